from collections.abc import Iterator
from pathlib import Path

import pytest

from bazaar.testing import NatsServer


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    yield server
    server.stop()
