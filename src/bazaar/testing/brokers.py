"""Every broker the bus runs on, as pytest fixtures: a test that takes `broker` runs once
per broker (NATS on a real nats-server, RabbitMQ on a real node, and the in-memory one),
the same test body each time. A conftest imports what it uses:

    from bazaar.testing.brokers import broker, rabbitmq_node  # noqa: F401

RabbitMQ is the node at BAZAAR_TEST_RABBITMQ_URL (CI starts one), else a private node of
the installed `rabbitmq-server` for the session; with neither, its tests skip with the
reason (fail in CI). Each test leaves the node as it found it: what its buses declared is
deleted afterwards (quorum queues refuse aio-pika's default `if_unused=True`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from bazaar.platform.brokers import rabbitmq
from bazaar.platform.bus import Bus
from bazaar.testing.rabbitmq import RABBITMQ_URL_VARIABLE, RabbitMQServer, require_rabbitmq_server
from bazaar.testing.servers import NatsServer

REAL_BROKERS = ("nats", "rabbitmq")
ALL_BROKERS = (*REAL_BROKERS, "memory")


@dataclass
class Broker:
    """One broker for one test: its URL, and the buses the test made on it."""

    kind: str
    url: str
    server: NatsServer | RabbitMQServer | None = None
    buses: list[Bus] = field(default_factory=list)

    def bus(self, service: str, **options: Any) -> Bus:
        bus = Bus(self.url, service, **options)
        self.buses.append(bus)
        return bus

    def stop_server(self) -> None:
        """A broker outage (only for brokers this test started itself)."""
        assert self.server is not None, "this broker is shared: start one with `restartable`"
        self.server.stop()

    def start_server(self) -> None:
        assert self.server is not None
        self.server.start()

    async def close(self) -> None:
        for bus in reversed(self.buses):
            await bus.stop()
        if self.kind == "rabbitmq" and self.server is None:
            await forget_topology(self.url, self.buses)


async def forget_topology(url: str, buses: list[Bus]) -> None:
    """Delete what the buses declared on a shared node, so the next test starts clean."""
    queues = {rabbitmq.UNROUTED_QUEUE, rabbitmq.DEADLETTER_QUEUE}
    for bus in buses:
        queues.update(getattr(bus.transport, "declared_queues", []))
    connection = await aio_pika.connect(url)
    try:
        for name in sorted(queues):
            channel = await connection.channel()
            queue = await channel.get_queue(name, ensure=False)
            await queue.delete(if_unused=False, if_empty=False)
            await channel.close()
        channel = await connection.channel()
        for exchange in (
            rabbitmq.EVENTS_EXCHANGE,
            rabbitmq.DEADLETTER_EXCHANGE,
            rabbitmq.UNROUTED_EXCHANGE,
        ):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def rabbitmq_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a RabbitMQ for the session's tests."""
    configured = os.environ.get(RABBITMQ_URL_VARIABLE, "")
    if configured:
        yield configured
        return
    require_rabbitmq_server()
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq")).start()
    yield server.url
    server.close()


async def _broker(kind: str, request: pytest.FixtureRequest, folder: Path) -> AsyncIterator[Broker]:
    if kind == "nats":
        nats = NatsServer(folder).start()
        broker = Broker(kind, nats.url, nats)
    elif kind == "rabbitmq":
        broker = Broker(kind, request.getfixturevalue("rabbitmq_node"))
    else:
        broker = Broker(kind, f"memory://test-{uuid.uuid4().hex[:8]}")
    try:
        yield broker
    finally:
        await broker.close()
        if isinstance(broker.server, NatsServer):
            broker.server.stop()


@pytest.fixture(params=ALL_BROKERS)
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """Each broker in turn: NATS, RabbitMQ, memory."""
    async for each in _broker(request.param, request, tmp_path):
        yield each


@pytest.fixture(params=REAL_BROKERS)
async def real_broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """Each real broker in turn (what an operator's tool or a process talks to)."""
    async for each in _broker(request.param, request, tmp_path):
        yield each


@pytest.fixture(params=REAL_BROKERS)
async def restartable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    """A real broker of this test's own, which the test may stop and start again."""
    server: NatsServer | RabbitMQServer
    if request.param == "nats":
        server = NatsServer(tmp_path).start()
    else:
        server = RabbitMQServer(tmp_path).start()
    broker = Broker(request.param, server.url, server)
    try:
        yield broker
    finally:
        if not _running(server):  # the buses' connections close cleanly against a server
            server.start()
        await broker.close()
        if isinstance(server, RabbitMQServer):
            server.close()
        else:
            server.stop()


def _running(server: NatsServer | RabbitMQServer) -> bool:
    process = server._process
    return process is not None and process.poll() is None
