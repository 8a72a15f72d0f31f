from collections.abc import Iterator
from pathlib import Path

import pytest

from bazaar.testing import NatsServer

# Every broker the bus runs on, for the tests that run once per broker.
from bazaar.testing.brokers import broker, rabbitmq_node, real_broker, restartable  # noqa: F401


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    yield server
    server.stop()
