"""The pull consumer under `Bus`, against a real nats-server."""

import asyncio
from collections.abc import AsyncIterator, Callable

import nats as nats_client
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from bazaar.platform.jetstream import PullConsumer, declare_stream, ensure_durable
from bazaar.testing import NatsServer

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


async def status_seen(connection: NatsClient, *statuses: str) -> asyncio.Future[None]:
    """Resolves once the server answers a pull request with one of `statuses` (a listener
    of our own on the inboxes, beside the consumer's)."""
    seen = asyncio.get_running_loop().create_future()

    async def check(msg: Msg) -> None:
        status = msg.headers.get(api.Header.STATUS) if msg.headers else None
        if status in statuses and not seen.done():
            seen.set_result(None)

    await connection.subscribe("_INBOX.>", cb=check)
    return seen


async def publish(js: JetStreamContext, *bodies: bytes) -> None:
    for body in bodies:
        await js.publish(SUBJECT, body, stream=STREAM)


async def test_no_more_than_capacity_are_handled_at_once_and_all_are_handled(
    connection: NatsClient,
) -> None:
    release = asyncio.Event()
    busy: list[bytes] = []
    done: list[bytes] = []
    in_hand, most_in_hand = 0, 0

    async def handle(msg: Msg) -> None:
        nonlocal in_hand, most_in_hand
        in_hand += 1
        most_in_hand = max(most_in_hand, in_hand)
        busy.append(msg.data)
        await release.wait()
        await msg.ack()
        in_hand -= 1
        done.append(msg.data)

    consumer = PullConsumer(connection, STREAM, DURABLE, handle, capacity=3, expires=0.5)
    await consumer.start()
    js = connection.jetstream()
    await publish(js, *(str(n).encode() for n in range(10)))
    await eventually(lambda: len(busy) == 3)
    # Full: the server holds no pull request of ours and has the other 7 waiting. (flush:
    # anything the consumer sent before now has reached the server.)
    await connection.flush()
    info = await js.consumer_info(STREAM, DURABLE)
    assert (info.num_waiting, info.num_ack_pending, info.num_pending) == (0, 3, 7)
    assert len(busy) == 3
    release.set()
    await eventually(lambda: len(done) == 10)
    assert sorted(int(body) for body in done) == list(range(10))
    assert most_in_hand == 3  # never more than capacity, before the release or after
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
    # A request open at the deletion ends with 409, one sent after it finds no responder.
    refusal = await status_seen(connection, "409", "503")
    consumer = PullConsumer(connection, STREAM, DURABLE, handle, expires=0.3)
    await consumer.start()
    await publish(js, b"first")
    await eventually(lambda: len(handled) == 1)
    await js.delete_consumer(STREAM, DURABLE)  # by an operator: every request is refused
    await asyncio.wait_for(refusal, 10)  # the consumer has been refused: it knows
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
