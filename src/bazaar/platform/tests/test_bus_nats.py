"""What only the NATS transport does, against a real nats-server with JetStream: the
duplicate window (`Nats-Msg-Id`), the payload limit, bodies JSON decoding would refuse,
streams of an older release. What every broker does is in test_bus.py."""

import asyncio
from collections.abc import AsyncIterator, Callable

import nats as nats_client
import pytest
from prometheus_client import REGISTRY

from bazaar.platform.bus import Bus, PermanentError
from bazaar.platform.events import DEADLETTER_STREAM, Envelope, new_event
from bazaar.testing import NatsServer, jetstream


async def eventually(condition: Callable[[], object], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def buses(nats: NatsServer) -> AsyncIterator[tuple[Bus, Bus]]:
    producer, consumer = Bus(nats.url, "producer"), Bus(nats.url, "consumer", max_deliveries=3)
    yield producer, consumer
    await consumer.stop()
    await producer.stop()


async def test_an_event_reaches_its_consumer_once(buses: tuple[Bus, Bus]) -> None:
    producer, consumer = buses
    seen: list[Envelope] = []

    async def handle(event: Envelope) -> None:
        seen.append(event)

    consumer.on_event("order.paid", "consumer", handle)
    await producer.start()
    await consumer.start()
    event = new_event("order.paid", "producer", {"order_id": "o1"}, subject="o1")
    await producer.publish_event(event)
    await producer.publish_event(event)  # JetStream drops the copy by Nats-Msg-Id
    # An event published after both: once it is handled, a copy would have been too
    # (events are handed over in stream order, each handler started in turn).
    later = new_event("order.paid", "producer", {"order_id": "o2"}, subject="o2")
    await producer.publish_event(later)
    await eventually(lambda: later.id in [e.id for e in seen])
    assert [e.id for e in seen] == [event.id, later.id]
    assert seen[0].data == {"order_id": "o1"}


async def test_bodies_faststream_could_not_decode_are_dead_lettered_not_redelivered(
    buses: tuple[Bus, Bus],
) -> None:
    """JSON nested too deep for Python's parser, and a body that is not what its
    content-type says: FastStream's own decoding raised on both before any handler ran,
    so they came back every 30 s for ever."""
    producer, consumer = buses
    handled: list[str] = []

    async def handle(event: Envelope) -> None:
        handled.append(event.id)

    consumer.on_event("order.paid", "consumer", handle)
    await producer.start()
    await consumer.start()
    js = jetstream(producer)
    nested = b"[" * 100_000 + b"]" * 100_000
    await js.publish("bazaar.events.order.paid", nested, stream="BAZAAR_EVENTS")
    await js.publish(
        "bazaar.events.order.paid",
        b"not json",
        stream="BAZAAR_EVENTS",
        headers={"content-type": "application/json"},
    )
    good = new_event("order.paid", "producer", {})
    await producer.publish_event(good)
    await eventually(lambda: good.id in handled)
    deadline = asyncio.get_running_loop().time() + 10
    while (await js.stream_info(DEADLETTER_STREAM)).state.messages < 2:
        assert asyncio.get_running_loop().time() < deadline, "not dead-lettered"
        await asyncio.sleep(0.1)
    # The originals are acknowledged after their dead letters are stored, and an ack is
    # sent without waiting for the server: seen settled well within the 30 s ack wait
    # after which an unacknowledged message would come back.
    while (info := await js.consumer_info("BAZAAR_EVENTS", "consumer-order-paid")).num_ack_pending:
        assert asyncio.get_running_loop().time() < deadline, f"still pending: {info}"
        await asyncio.sleep(0.1)
    assert info.num_redelivered == 0


async def test_a_dead_letter_of_an_event_near_the_size_limit_keeps_its_head(
    buses: tuple[Bus, Bus],
) -> None:
    producer, consumer = buses

    async def refuse(event: Envelope) -> None:
        raise PermanentError("no")

    consumer.on_event("order.paid", "consumer", refuse)
    await producer.start()
    await consumer.start()
    big = new_event("order.paid", "producer", {"padding": "p" * 1_040_000})
    await producer.publish_event(big)
    js = jetstream(producer)
    deadline = asyncio.get_running_loop().time() + 10
    while (await js.stream_info(DEADLETTER_STREAM)).state.messages < 1:
        assert asyncio.get_running_loop().time() < deadline, "not dead-lettered"
        await asyncio.sleep(0.1)
    letter = await js.get_last_msg(DEADLETTER_STREAM, "bazaar.deadletter.consumer.order.paid")
    assert letter.headers and letter.data
    assert int(letter.headers["x-truncated-from"]) > len(letter.data)
    assert big.id.encode() in letter.data


def handled(service: str, event_type: str, outcome: str) -> float:
    labels = {"service": service, "subject": f"bazaar.events.{event_type}", "outcome": outcome}
    return REGISTRY.get_sample_value("bazaar_messages_total", labels) or 0.0


async def test_a_batch_is_stored_in_order_and_each_event_counted_once(
    buses: tuple[Bus, Bus],
) -> None:
    producer, consumer = buses
    seen: list[int] = []

    async def handle(event: Envelope) -> None:
        seen.append(event.data["n"])

    consumer.on_event("order.created", "consumer", handle)
    await producer.start()
    await consumer.start()
    before = handled("consumer", "order.created", "ok")
    batch = [new_event("order.created", "producer", {"n": n}) for n in range(30)]
    await producer.publish_events([*batch, batch[3]])  # the copy is dropped by Nats-Msg-Id
    await eventually(lambda: handled("consumer", "order.created", "ok") - before >= 30)
    js = jetstream(producer)
    assert (await js.stream_info("BAZAAR_EVENTS")).state.messages == 30  # no copy to deliver
    assert sorted(seen) == list(range(30))
    stored = [
        Envelope.model_validate_json((await js.get_msg("BAZAAR_EVENTS", seq)).data or b"")
        for seq in range(1, 31)
    ]
    assert [e.id for e in stored] == [e.id for e in batch]
    assert handled("consumer", "order.created", "ok") - before == 30


async def test_a_stream_left_by_an_older_release_is_brought_to_the_current_settings(
    nats: NatsServer, buses: tuple[Bus, Bus]
) -> None:
    connection = await nats_client.connect(nats.url)
    js = connection.jetstream()
    await js.add_stream(name="BAZAAR_EVENTS", subjects=["bazaar.events.>"], max_age=3600)
    await js.add_stream(name="BAZAAR_DEADLETTER", subjects=["bazaar.deadletter.>", "old.>"])
    producer, _ = buses
    await producer.start()
    assert (await js.stream_info("BAZAAR_EVENTS")).config.max_age == 7 * 86400
    letters = (await js.stream_info("BAZAAR_DEADLETTER")).config
    assert letters.max_age == 30 * 86400
    assert sorted(letters.subjects or []) == ["bazaar.deadletter.>", "old.>"]
    await connection.close()


async def test_a_bus_started_before_its_broker_waits_for_it(tmp_path) -> None:
    """A service restarted while its broker is down does not exit: it waits."""
    server = NatsServer(tmp_path / "late")
    bus = Bus(server.url, "late")
    starting = asyncio.create_task(bus.start())
    await asyncio.sleep(1.5)  # nothing listens yet: start() keeps trying
    assert not starting.done()
    await asyncio.to_thread(server.start)
    try:
        async with asyncio.timeout(30):
            await starting
        assert await bus.ping()
    finally:
        await bus.stop()
        server.stop()
