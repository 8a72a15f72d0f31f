"""The pull consumer under `Bus`, against a real nats-server."""

import asyncio
from collections.abc import AsyncIterator, Callable

import nats as nats_client
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from bazaar.platform.jetstream import PullConsumer, declare_stream, ensure_durable
from bazaar.platform.testing import NatsServer

STREAM, SUBJECT, DURABLE = "TEST", "test.events", "test-consumer"


async def eventually(condition: Callable[[], object], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def connection(nats: NatsServer) -> AsyncIterator[NatsClient]:
    connection = await nats_client.connect(nats.url)
    js = connection.jetstream()
    await declare_stream(js, api.StreamConfig(name=STREAM), "test.>")
    await ensure_durable(js, STREAM, DURABLE, SUBJECT)
    yield connection
    await connection.close()


async def publish(js: JetStreamContext, *bodies: bytes) -> None:
    for body in bodies:
        await js.publish(SUBJECT, body, stream=STREAM)


async def test_no_more_than_capacity_are_handled_at_once_and_all_are_handled(
    connection: NatsClient,
) -> None:
    release = asyncio.Event()
    busy: list[bytes] = []
    done: list[bytes] = []

    async def handle(msg: Msg) -> None:
        busy.append(msg.data)
        await release.wait()
        await msg.ack()
        done.append(msg.data)

    consumer = PullConsumer(connection, STREAM, DURABLE, handle, capacity=3, expires=0.5)
    await consumer.start()
    await publish(connection.jetstream(), *(str(n).encode() for n in range(10)))
    await eventually(lambda: len(busy) == 3)
    await asyncio.sleep(0.7)  # a request expires meanwhile: still no room, none asked for
    assert len(busy) == 3
    release.set()
    await eventually(lambda: len(done) == 10)
    assert sorted(int(body) for body in done) == list(range(10))
    await consumer.stop()
    info = await connection.jetstream().consumer_info(STREAM, DURABLE)
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_deleted_consumer_is_waited_for_and_consumption_resumes(
    connection: NatsClient,
) -> None:
    handled: list[bytes] = []

    async def handle(msg: Msg) -> None:
        await msg.ack()
        handled.append(msg.data)

    js = connection.jetstream()
    consumer = PullConsumer(connection, STREAM, DURABLE, handle, expires=0.3)
    await consumer.start()
    await publish(js, b"first")
    await eventually(lambda: len(handled) == 1)
    await js.delete_consumer(STREAM, DURABLE)  # by an operator: every request is refused
    await asyncio.sleep(0.5)
    await ensure_durable(js, STREAM, DURABLE, SUBJECT)  # from the first event again
    await eventually(lambda: len(handled) == 2)
    await publish(js, b"second")
    await eventually(lambda: len(handled) == 3)
    assert handled == [b"first", b"first", b"second"]
    await consumer.stop()


async def test_stopping_abandons_what_is_being_handled_for_redelivery(
    connection: NatsClient,
) -> None:
    started = asyncio.Event()

    async def hang(msg: Msg) -> None:
        started.set()
        await asyncio.Event().wait()

    consumer = PullConsumer(connection, STREAM, DURABLE, hang)
    await consumer.start()
    await publish(connection.jetstream(), b"slow")
    await asyncio.wait_for(started.wait(), 5)
    await consumer.stop()
    info = await connection.jetstream().consumer_info(STREAM, DURABLE)
    assert info.num_ack_pending == 1  # not acknowledged: the server delivers it again
