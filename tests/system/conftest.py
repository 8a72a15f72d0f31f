"""System tests: the whole platform as real processes (nats-server, SMTP sink, every
service), started once per session in a temporary home on a free public port."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports

START_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("bazaar") / "home"
    platform = Platform(home, free_ports(1)[0])
    try:
        platform.start(timeout=START_TIMEOUT)
    except StartupError as exc:
        # The message names the processes that did not get ready, with their log tails.
        pytest.fail(f"the platform did not start (home {home}):\n{exc}", pytrace=False)
    yield platform
    platform.stop()


@pytest.fixture
def api(platform: Platform) -> Iterator[httpx.Client]:
    """A client of the public API, through the gateway (no proxy from the environment)."""
    with httpx.Client(base_url=platform.public_url, timeout=10.0, trust_env=False) as client:
        yield client
