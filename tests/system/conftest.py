"""System tests: the whole platform as real processes (nats-server, SMTP sink, every
service), started once per session in a temporary home on a free public port; once per
broker for a module that lists them in `BROKERS` (a RabbitMQ node of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports
from bazaar.testing.platform_broker import PlatformBroker
from bazaar.testing.rabbitmq import require_rabbitmq_server

START_TIMEOUT = 90.0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module lists the brokers it runs on in `BROKERS` (default: NATS only)."""
    if "broker" in metafunc.fixturenames:
        kinds = getattr(metafunc.module, "BROKERS", ("nats",))
        metafunc.parametrize("broker_kind", kinds, scope="session")


@pytest.fixture(scope="session")
def broker(broker_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformBroker]:
    """The platform's broker: the nats-server the runner starts, or a RabbitMQ node."""
    if broker_kind == "rabbitmq":
        require_rabbitmq_server()
    broker = PlatformBroker(broker_kind, tmp_path_factory.mktemp(broker_kind)).start()
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, broker: PlatformBroker
) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("bazaar") / "home"
    platform = Platform(home, free_ports(1)[0], extra_env=broker.env)
    broker.platform = platform
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
