"""The bus's promises, one test body per promise, run on every broker it offers: NATS
JetStream and RabbitMQ on real servers, and the in-memory broker of tests where the
promise is not about a server (an outage, say). What only one broker does (JetStream's
duplicate window, its payload limit) is in test_bus_nats.py."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.brokers import (
    NOT_OFFERED,
    DeadLetter,
    DeadLetterNotFound,
    Outgoing,
    check_broker_url,
    open_dead_letters,
)
from bazaar.platform.bus import (
    BadRequest,
    Bus,
    PermanentError,
    PublishIncomplete,
    RemoteError,
    incoming_headers,
)
from bazaar.platform.consumers import consume
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, event_subject, new_event
from bazaar.platform.messaging_tables import metadata as messaging
from bazaar.testing.brokers import Broker


async def eventually(condition: Callable[[], object], limit: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def dead_letters(url: str, count: int, limit: float = 15.0) -> list[DeadLetter]:
    deadline = asyncio.get_running_loop().time() + limit
    async with open_dead_letters(url) as letters:
        while len(found := await letters.list_all()) < count:
            assert asyncio.get_running_loop().time() < deadline, f"{count} dead letters expected"
            await asyncio.sleep(0.1)
    return found


class Recorder:
    """Records each event it handles with the headers it came with; fails on demand."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []
        self.headers: list[dict[str, str]] = []
        self.attempts: dict[str, int] = {}
        self.fixed = False  # once the cause is fixed, every event is handled

    async def handle(self, event: Envelope) -> None:
        self.attempts[event.id] = self.attempts.get(event.id, 0) + 1
        if event.data.get("refuse") and not self.fixed:
            raise PermanentError("refused for good")
        if event.data.get("flaky") and self.attempts[event.id] < event.data["flaky"]:
            raise RuntimeError("try again later")
        if event.data.get("poison"):
            raise RuntimeError("cannot handle this one")
        self.seen.append(event)
        self.headers.append(dict(incoming_headers()))

    def ids(self) -> list[str]:
        return [e.id for e in self.seen]


async def started(broker: Broker, recorder: Recorder, **options: object) -> tuple[Bus, Bus]:
    producer = broker.bus("producer")
    consumer = broker.bus("consumer", **options)
    consumer.on_event("order.paid", "mailer", recorder.handle)
    await producer.start()
    await consumer.start()
    return producer, consumer


async def test_events_reach_their_consumer_in_order_with_their_headers(broker: Broker) -> None:
    recorder = Recorder()
    producer, _ = await started(broker, recorder)
    first = new_event("order.paid", "order", {"order_id": "o1"}, subject="o1")
    later = new_event("order.paid", "order", {"order_id": "o2"}, subject="o2")
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    await producer.publish_event(first, headers=trace)
    await producer.publish_event(later)
    await eventually(lambda: len(recorder.seen) == 2)
    assert recorder.ids() == [first.id, later.id]
    assert recorder.seen[0].data == {"order_id": "o1"}
    assert recorder.headers[0]["traceparent"] == trace["traceparent"]
    assert "traceparent" not in recorder.headers[1]


async def test_a_batch_is_stored_and_handed_over_in_order(broker: Broker) -> None:
    recorder = Recorder()
    producer, _ = await started(broker, recorder)
    batch = [new_event("order.paid", "order", {"n": n}) for n in range(30)]
    await producer.publish_events(batch, headers=[{"n": str(n)} for n in range(30)])
    await eventually(lambda: len(recorder.seen) == 30)
    # Handlers start in the order the broker holds the events (up to 20 run at once).
    assert recorder.ids() == [e.id for e in batch]
    assert [h["n"] for h in recorder.headers] == [str(n) for n in range(30)]


async def test_a_failing_handler_gets_the_event_again_with_its_attempt_counted(
    broker: Broker,
) -> None:
    recorder = Recorder()
    producer, _ = await started(broker, recorder, max_deliveries=5)
    flaky = new_event("order.paid", "order", {"flaky": 3})
    await producer.publish_event(flaky)
    await eventually(lambda: recorder.ids() == [flaky.id])
    assert recorder.attempts[flaky.id] == 3  # failed twice, redelivered, handled


async def test_poison_is_dead_lettered_with_its_error_and_consumption_goes_on(
    broker: Broker,
) -> None:
    recorder = Recorder()
    producer, _ = await started(broker, recorder, max_deliveries=3)
    await producer.transport.publish(Outgoing(event_subject("order.paid"), b"{not json"), 5.0)
    poison = new_event("order.paid", "order", {"poison": True})
    await producer.publish_event(poison)
    good = new_event("order.paid", "order", {"fine": True})
    await producer.publish_event(good)
    await eventually(lambda: good.id in recorder.ids())
    letters = await dead_letters(broker.url, 2)
    errors = {letter.envelope_id: letter.error for letter in letters}
    assert errors[""].startswith("unparseable event")
    assert errors[poison.id] == "RuntimeError: cannot handle this one"
    assert recorder.attempts[poison.id] == 3  # every delivery it had, then given up on
    assert {(x.consumer, x.event_type) for x in letters} == {("mailer", "order.paid")}
    assert recorder.ids() == [good.id]


async def test_a_permanent_error_is_dead_lettered_at_once(broker: Broker) -> None:
    recorder = Recorder()
    producer, _ = await started(broker, recorder)
    refused = new_event("order.paid", "order", {"refuse": True})
    await producer.publish_event(refused)
    (letter,) = await dead_letters(broker.url, 1)
    assert letter.error == "PermanentError: refused for good"
    assert Envelope.model_validate_json(letter.body) == refused
    await asyncio.sleep(0.5)  # no second delivery comes
    assert recorder.attempts[refused.id] == 1


async def test_a_dead_letter_is_replayed_to_its_consumer_once_fixed(broker: Broker) -> None:
    recorder = Recorder()
    producer, _ = await started(broker, recorder)
    event = new_event("order.paid", "order", {"refuse": True})
    await producer.publish_event(event)
    (letter,) = await dead_letters(broker.url, 1)
    assert letter.time is not None
    recorder.fixed = True
    async with open_dead_letters(broker.url) as letters:
        replayed = await letters.replay(letter.seq)
        assert replayed.envelope_id == event.id
        await eventually(lambda: recorder.ids() == [event.id])
        assert await letters.list_all() == []
        with pytest.raises(DeadLetterNotFound):
            await letters.replay(letter.seq)


async def test_replay_all_replays_every_letter_oldest_first(broker: Broker) -> None:
    fixed = False
    handled: list[str] = []

    async def handle(event: Envelope) -> None:
        if not fixed:
            raise PermanentError(f"product {event.data['n']} is unknown")
        handled.append(event.id)

    producer, consumer = broker.bus("producer"), broker.bus("consumer")
    consumer.on_event("order.paid", "mailer", handle)
    await producer.start()
    await consumer.start()
    events = [new_event("order.paid", "order", {"n": n}) for n in range(3)]
    for event in events:
        await producer.publish_event(event)
    listed = await dead_letters(broker.url, 3)
    assert sorted(x.envelope_id for x in listed) == sorted(e.id for e in events)
    fixed = True
    async with open_dead_letters(broker.url) as letters:
        replayed = await letters.replay_all()
        assert {r.seq for r in replayed} == {x.seq for x in listed}
        await eventually(lambda: sorted(handled) == sorted(e.id for e in events))
        assert await letters.list_all() == []


class Paid(BaseModel):
    order_id: str


async def test_a_copy_of_an_event_has_no_second_effect_through_the_inbox(
    broker: Broker, tmp_path: Path
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}")
    async with db.engine.begin() as connection:
        await connection.run_sync(messaging.create_all)
    applied: list[str] = []

    async def mail(session: AsyncSession, payload: Paid, event: Envelope) -> None:
        applied.append(payload.order_id)

    producer, consumer = broker.bus("producer"), broker.bus("consumer")
    consume(consumer, db, "order.paid", consumer="mailer", contract=Paid, handler=mail)
    await producer.start()
    await consumer.start()
    event = new_event("order.paid", "order", {"order_id": "o1"})
    later = new_event("order.paid", "order", {"order_id": "o2"})
    # A relay that crashed before marking its row publishes the event again; JetStream
    # drops the copy within its window, RabbitMQ delivers it: the inbox drops it either way.
    await producer.publish_events([event, event, later])
    await eventually(lambda: "o2" in applied)
    await asyncio.sleep(0.3)
    assert applied == ["o1", "o2"]
    await db.dispose()


async def test_request_reply_answers_and_reports_errors(broker: Broker) -> None:
    caller, answerer = broker.bus("caller"), broker.bus("answerer")

    async def double(payload: dict[str, object]) -> dict[str, object]:
        value = payload.get("x")
        if value == "boom":
            raise RuntimeError("a bug")
        if not isinstance(value, int):
            raise BadRequest("x must be an integer")
        return {"doubled": value * 2, "asked_by": incoming_headers().get("x-caller", "")}

    answerer.on_request("bazaar.rpc.test.double", double)
    await caller.start()
    await answerer.start()
    answer = await caller.request("bazaar.rpc.test.double", {"x": 21}, headers={"x-caller": "c"})
    assert answer == {"doubled": 42, "asked_by": "c"}
    for payload, code in (({"x": "many"}, "bad_request"), ({"x": "boom"}, "internal")):
        with pytest.raises(RemoteError) as refused:
            await caller.request("bazaar.rpc.test.double", payload)
        assert refused.value.code == code
    with pytest.raises(RemoteError) as nobody:
        await caller.request("bazaar.rpc.nobody.home", {}, timeout=0.3)
    assert nobody.value.code == "unavailable"


async def test_a_slow_responder_is_a_timeout(broker: Broker) -> None:
    caller, answerer = broker.bus("caller"), broker.bus("answerer")

    async def slow(payload: dict[str, object]) -> dict[str, object]:
        await asyncio.sleep(1.0)
        return {}

    answerer.on_request("bazaar.rpc.test.slow", slow)
    await caller.start()
    await answerer.start()
    with pytest.raises(RemoteError) as late:
        await caller.request("bazaar.rpc.test.slow", {}, timeout=0.2)
    assert late.value.code == "timeout"


async def test_a_broker_outage_fails_publishing_then_everything_resumes(
    restartable: Broker,
) -> None:
    recorder = Recorder()
    producer, _ = await started(restartable, recorder)

    async def echo(payload: dict[str, object]) -> dict[str, object]:
        return payload

    answerer, caller = restartable.bus("answerer"), restartable.bus("caller")
    answerer.on_request("bazaar.rpc.test.echo", echo)
    await answerer.start()
    await caller.start()
    before = new_event("order.paid", "order", {"n": 0})
    await producer.publish_event(before)
    await eventually(lambda: recorder.ids() == [before.id])

    restartable.stop_server()
    with pytest.raises(PublishIncomplete) as incomplete:
        await producer.publish_events([new_event("order.paid", "order", {}) for _ in range(3)], 0.5)
    assert incomplete.value.acknowledged == 0
    with pytest.raises(RemoteError):
        await caller.request("bazaar.rpc.test.echo", {"n": 1}, timeout=0.5)
    restartable.start_server()

    after = new_event("order.paid", "order", {"n": 1})
    await _publish_until_stored(producer, after)  # as the outbox relay does
    await eventually(lambda: after.id in recorder.ids(), limit=30)
    assert await _answered(caller, "bazaar.rpc.test.echo", {"n": 2}) == {"n": 2}
    assert await producer.ping()


async def _answered(bus: Bus, subject: str, payload: dict[str, object]) -> object:
    """The answer, once the responder is back (its subscription is made again)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            return await bus.request(subject, payload, timeout=1.0)
        except RemoteError:
            assert asyncio.get_running_loop().time() < deadline, "no answer after the outage"
            await asyncio.sleep(0.2)


async def _publish_until_stored(bus: Bus, event: Envelope, limit: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        try:
            await bus.publish_event(event, timeout=1.0)
            return
        except Exception:
            assert asyncio.get_running_loop().time() < deadline, "the broker never came back"
            await asyncio.sleep(0.2)


async def test_a_real_broker_is_reachable_by_its_url_alone(real_broker: Broker) -> None:
    bus = real_broker.bus("pinger")
    await bus.start()
    assert await bus.ping()
    async with open_dead_letters(real_broker.url) as letters:
        assert await letters.list_all() == []
        with pytest.raises(DeadLetterNotFound):
            await letters.replay(1)


@pytest.mark.parametrize("url", ["kafka://broker:9092", "redis://cache:6379/0", "127.0.0.1:4222"])
def test_a_broker_not_offered_is_refused_naming_those_that_are(url: str) -> None:
    with pytest.raises(ValueError, match=r"nats://.*amqp://.*memory://") as refused:
        check_broker_url(url)
    assert NOT_OFFERED in str(refused.value)
    assert "no server of them runs in CI" in str(refused.value)
