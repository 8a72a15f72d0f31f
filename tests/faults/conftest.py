"""Fault tests: a fresh platform (real processes, real nats-server) per test module, so
that what one fault leaves behind never explains another's result.

A module tunes its platform with `PLATFORM_ENV` (extra BAZAAR_* variables, e.g. a short
payment deadline)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports

from .shop import Shopper, client, sign_up_many

START_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    env = dict(getattr(request.module, "PLATFORM_ENV", {}))
    home = tmp_path_factory.mktemp("faults") / "home"
    platform = Platform(home, free_ports(1)[0], extra_env=env)
    try:
        platform.start(timeout=START_TIMEOUT)
    except StartupError as exc:
        pytest.fail(f"the platform did not start (home {home}):\n{exc}", pytrace=False)
    yield platform
    platform.stop()


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """The public API, through the gateway."""
    async with client(platform.public_url) as api:
        yield api


@pytest.fixture
async def payment(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """The payment service's internal API (its processor's mode, its payments)."""
    async with client(platform.url("payment")) as payment:
        yield payment


@pytest.fixture(scope="module")
def shoppers(request: pytest.FixtureRequest, platform: Platform) -> list[Shopper]:
    """`SHOPPERS` (a module variable) new customers, signed up once for the module."""

    async def sign_up() -> list[Shopper]:
        async with client(platform.public_url, timeout=30.0) as api:
            return await sign_up_many(api, request.module.SHOPPERS)

    return asyncio.run(sign_up())
