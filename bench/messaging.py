"""The event bus: events published and consumed through the platform's `Bus` (envelopes,
dead-letter rules, manual acks, metrics), against the broker's raw client doing the same
on the same server, in interleaved rounds: nats-py JetStream on NATS, aio-pika (publisher
confirms, a quorum queue, manual acks) on RabbitMQ.

Both sides publish one event at a time, awaiting the broker's acknowledgement (as the
outbox relay does), while a durable pull consumer in the same process acks each event.
A round ends when the last event was consumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bazaar.platform.bus import Bus
from bazaar.platform.events import EVENTS_PREFIX, EVENTS_STREAM, Envelope, new_event
from bench.sizes import Sizes
from bench.stats import ratio

BUS_TYPE = "bench.bus"
BUS_CONSUMER = "bench"
BUS_DURABLE = f"{BUS_CONSUMER}-{BUS_TYPE}".replace(".", "-")  # as Bus.on_event names it
RAW_SUBJECT = EVENTS_PREFIX + "bench.raw"
RAW_DURABLE = "bench-raw"
WARM_UP_EVENTS = 50
ROUND_TIMEOUT = 120.0


class Tally:
    """Counts consumed events; `until(n)` waits for the n-th since `reset()`."""

    def __init__(self) -> None:
        self.count = 0
        self._wanted = 0
        self._reached = asyncio.Event()

    def reset(self, wanted: int) -> None:
        self.count = 0
        self._wanted = wanted
        self._reached.clear()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self._wanted:
            self._reached.set()

    async def until_done(self) -> None:
        async with asyncio.timeout(ROUND_TIMEOUT):
            await self._reached.wait()


async def timed_round(
    publish: Callable[[int], Awaitable[None]], tally: Tally, events: int
) -> dict[str, float]:
    tally.reset(events)
    started = time.perf_counter()
    for number in range(events):
        await publish(number)
    published = time.perf_counter()
    await tally.until_done()
    finished = time.perf_counter()
    return {"publish_seconds": published - started, "total_seconds": finished - started}


async def measure(broker_url: str, sizes: Sizes) -> dict[str, Any]:
    if broker_url.startswith(("amqp://", "amqps://")):
        raw = await RabbitRaw.open(broker_url)
        try:
            return await _measure(broker_url, sizes, raw.publish, raw.tally)
        finally:
            await raw.close()
    connection = await nats.connect(broker_url)
    js = connection.jetstream()
    await _forget_consumers(js)
    raw_tally = Tally()
    raw_consumer = asyncio.create_task(_consume_raw(js, raw_tally))

    async def via_raw(number: int) -> None:
        event_id = str(uuid.uuid4())
        await js.publish(
            RAW_SUBJECT,
            _raw_envelope(event_id, number),
            stream=EVENTS_STREAM,
            timeout=5.0,
            headers={"Nats-Msg-Id": event_id},
        )

    try:
        return await _measure(broker_url, sizes, via_raw, raw_tally)
    finally:
        raw_consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await raw_consumer
        await _forget_consumers(js)
        await connection.close()


async def _measure(
    broker_url: str, sizes: Sizes, via_raw: Callable[[int], Awaitable[None]], raw_tally: Tally
) -> dict[str, Any]:
    bus, bus_tally = await _platform_side(broker_url)

    async def via_bus(number: int) -> None:
        await bus.publish_event(new_event(BUS_TYPE, "bench", {"n": number}, str(number)))

    sides = {"bus": (via_bus, bus_tally), "raw": (via_raw, raw_tally)}
    totals = {name: {"events": 0, "publish_seconds": 0.0, "total_seconds": 0.0} for name in sides}
    rounds: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for publish, tally in sides.values():
            await timed_round(publish, tally, WARM_UP_EVENTS)
        for _ in range(sizes.bus_rounds):
            for name, (publish, tally) in sides.items():
                timing = await timed_round(publish, tally, sizes.bus_events)
                totals[name]["events"] += sizes.bus_events
                rounds[name].append(round(sizes.bus_events / timing["total_seconds"], 1))
                for key, seconds in timing.items():
                    totals[name][key] += seconds
    finally:
        await bus.stop()
    result: dict[str, Any] = {
        "rounds": sizes.bus_rounds,
        "events_per_round": sizes.bus_events,
        "sides": {
            name: {
                "events": t["events"],
                "published_per_s": round(ratio(t["events"], t["publish_seconds"]), 1),
                "consumed_per_s": round(ratio(t["events"], t["total_seconds"]), 1),
                "rounds_consumed_per_s": rounds[name],
            }
            for name, t in totals.items()
        },
    }
    result["bus_over_raw"] = round(
        ratio(result["sides"]["bus"]["consumed_per_s"], result["sides"]["raw"]["consumed_per_s"]),
        3,
    )
    return result


async def _platform_side(broker_url: str) -> tuple[Bus, Tally]:
    bus = Bus(broker_url, "bench")
    tally = Tally()

    async def handle(_: Envelope) -> None:
        tally.hit()

    bus.on_event(BUS_TYPE, BUS_CONSUMER, handle)
    await bus.start()
    return bus, tally


async def _consume_raw(js: JetStreamContext, tally: Tally) -> None:
    subscription = await js.pull_subscribe(RAW_SUBJECT, durable=RAW_DURABLE, stream=EVENTS_STREAM)
    while True:
        try:
            messages = await subscription.fetch(20, timeout=2.0)
        except TimeoutError:
            continue
        for message in messages:
            await message.ack()
            tally.hit()


def _raw_envelope(event_id: str, number: int) -> bytes:
    """What a hand-written producer would send: the same envelope, built as a dict."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "type": "bench.raw",
            "source": "/bazaar/bench",
            "subject": str(number),
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": {"n": number},
        }
    ).encode()


async def _forget_consumers(js: JetStreamContext) -> None:
    """Durables left by an earlier run would replay old events into this one's counts."""
    for durable in (BUS_DURABLE, RAW_DURABLE):
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(EVENTS_STREAM, durable)


class RabbitRaw:
    """What a hand-written aio-pika service would do: publish persistent messages with
    publisher confirms to a topic exchange, consume a quorum queue with manual acks."""

    QUEUE = "bench.raw"

    def __init__(self, connection: Any, exchange: Any) -> None:
        self.connection = connection
        self.exchange = exchange
        self.tally = Tally()

    @classmethod
    async def open(cls, url: str) -> RabbitRaw:
        connection = await aio_pika.connect_robust(url)
        publishing = await connection.channel(publisher_confirms=True)
        exchange = await publishing.declare_exchange(
            "bench.raw", aio_pika.ExchangeType.TOPIC, durable=True
        )
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=20)
        queue = await consuming.declare_queue(
            cls.QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.purge()  # an earlier run's leftovers would count in this one's
        await queue.bind("bench.raw", RAW_SUBJECT)
        raw = cls(connection, exchange)

        async def consume(message: Any) -> None:
            await message.ack()
            raw.tally.hit()

        await queue.consume(consume)
        return raw

    async def publish(self, number: int) -> None:
        event_id = str(uuid.uuid4())
        message = aio_pika.Message(
            _raw_envelope(event_id, number),
            message_id=event_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.exchange.publish(message, RAW_SUBJECT, timeout=5.0)

    async def close(self) -> None:
        await self.connection.close()
