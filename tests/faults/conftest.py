"""Fault tests: a fresh platform (real processes, real broker) per test module, so
that what one fault leaves behind never explains another's result. A module whose
faults must hold on every broker says so in `BROKERS` ("nats", "rabbitmq"): its tests
then run once per broker, each on a platform of its own.

A module tunes its platform with `PLATFORM_ENV` (extra BAZAAR_* variables, e.g. a short
payment deadline)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports
from bazaar.testing.platform_broker import PlatformBroker

from .shop import Shopper, client, sign_up_many

START_TIMEOUT = 90.0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module lists the brokers its faults run on in `BROKERS` (default: NATS only)."""
    if "broker" in metafunc.fixturenames:
        kinds = getattr(metafunc.module, "BROKERS", ("nats",))
        # A broker on which the module's faults are known not to hold yet, and why: run,
        # reported, and not failing the suite (an XPASS says it holds now).
        known = getattr(metafunc.module, "NOT_YET_ON", {})
        params = [
            pytest.param(k, marks=pytest.mark.xfail(reason=known[k], strict=False))
            if k in known
            else k
            for k in kinds
        ]
        metafunc.parametrize("broker_kind", params, scope="module")


@pytest.fixture(scope="module")
def broker(broker_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformBroker]:
    """The platform's broker: the nats-server the runner starts, or a RabbitMQ node."""
    with PlatformBroker.running(broker_kind, tmp_path_factory.mktemp(broker_kind)) as broker:
        yield broker


UNTRACED = {"OTEL_SDK_DISABLED": "true"}


@pytest.fixture(scope="module")
def platform(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    broker: PlatformBroker,
) -> Iterator[Platform]:
    # Untraced: tests/system proves the traces; here tracing every checkout would only
    # take CPU from the platform under test (about 1.6x per order on two cores).
    env = {**UNTRACED, **getattr(request.module, "PLATFORM_ENV", {}), **broker.env}
    home = tmp_path_factory.mktemp("faults") / "home"
    platform = Platform(home, free_ports(1)[0], extra_env=env)
    broker.platform = platform
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
