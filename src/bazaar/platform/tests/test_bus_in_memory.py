"""The bus on FastStream's in-memory broker, as every service's tests use it: the same
rules as on a real server (test_bus.py), through the other path."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from faststream.nats import NatsMessage, TestNatsBroker
from prometheus_client import REGISTRY
from pydantic import BaseModel

from bazaar.platform.bus import BadRequest, Bus, PermanentError, RemoteError
from bazaar.platform.events import DEADLETTER_PREFIX, DEADLETTER_STREAM, Envelope, new_event


@dataclass
class Letters:
    subjects: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


class Order(BaseModel):
    order_id: str


def collect_dead_letters(bus: Bus) -> Letters:
    letters = Letters()

    @bus.broker.subscriber(DEADLETTER_PREFIX + ">", stream=DEADLETTER_STREAM)
    async def collect(msg: NatsMessage) -> None:
        letters.subjects.append(msg.raw_message.subject)
        letters.errors.append(msg.headers.get("x-error", ""))
        letters.bodies.append(msg.body)

    return letters


@pytest.fixture
def handled() -> list[Envelope]:
    return []


@pytest.fixture
def bus(handled: list[Envelope]) -> Bus:
    bus = Bus("nats://127.0.0.1:4222", "memory", max_deliveries=2)

    async def handle(event: Envelope) -> None:
        if event.data.get("refuse"):
            raise PermanentError("refused for good")
        if event.data.get("flaky"):
            raise RuntimeError("try again later")
        Order.model_validate(event.data)  # a ValidationError: the event breaks its contract
        handled.append(event)

    bus.on_event("order.paid", "mailer", handle)

    async def double(payload: dict[str, object]) -> dict[str, object]:
        value = payload.get("x")
        if value == "boom":
            raise RuntimeError("a bug")
        if not isinstance(value, int):
            raise BadRequest("x must be an integer")
        return {"doubled": value * 2}

    bus.on_request("bazaar.rpc.test.double", double)
    return bus


@pytest.fixture
async def letters(bus: Bus) -> AsyncIterator[Letters]:
    letters = collect_dead_letters(bus)
    async with TestNatsBroker(bus.broker):
        await bus.start()
        yield letters
        await bus.stop()


def counted(outcome: str) -> float:
    labels = {"service": "memory", "subject": "bazaar.events.order.paid", "outcome": outcome}
    return REGISTRY.get_sample_value("bazaar_messages_total", labels) or 0.0


async def test_an_event_reaches_its_handler(
    bus: Bus, letters: Letters, handled: list[Envelope]
) -> None:
    before = counted("ok")
    event = new_event("order.paid", "order", {"order_id": "o1"})
    await bus.publish_event(event)
    assert [e.id for e in handled] == [event.id]
    assert letters.subjects == []
    assert counted("ok") - before == 1


async def test_a_batch_arrives_in_order(
    bus: Bus, letters: Letters, handled: list[Envelope]
) -> None:
    batch = [new_event("order.paid", "order", {"order_id": f"o{n}"}) for n in range(5)]
    await bus.publish_events(batch)
    assert [e.id for e in handled] == [e.id for e in batch]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "unparseable event"),
        (new_event("order.paid", "order", {"refuse": True}).model_dump_json(), "PermanentError"),
        (new_event("order.paid", "order", {"order_id": 7}).model_dump_json(), "ValidationError"),
    ],
)
async def test_what_no_retry_can_fix_is_dead_lettered_at_once(
    bus: Bus, letters: Letters, handled: list[Envelope], body: str | bytes, error: str
) -> None:
    before = counted("dead_letter")
    await bus.broker.publish(body, "bazaar.events.order.paid", stream="BAZAAR_EVENTS")
    assert letters.subjects == ["bazaar.deadletter.mailer.order.paid"]
    assert error in letters.errors[0]
    assert letters.bodies[0] == (body if isinstance(body, bytes) else body.encode())
    assert counted("dead_letter") - before == 1
    await bus.publish_event(new_event("order.paid", "order", {"order_id": "o2"}))
    assert len(handled) == 1  # the consumer goes on


async def test_a_failing_handler_is_retried_until_its_last_delivery(
    bus: Bus, letters: Letters
) -> None:
    flaky = new_event("order.paid", "order", {"flaky": True})
    retried = counted("retry")
    await bus.publish_event(flaky)  # the first of two deliveries: handed back for later
    assert counted("retry") - retried == 1
    assert letters.subjects == []

    last_chance = Bus("nats://127.0.0.1:4222", "memory", max_deliveries=1)

    async def fail(event: Envelope) -> None:
        raise RuntimeError("try again later")

    last_chance.on_event("order.paid", "mailer", fail)
    last_letters = collect_dead_letters(last_chance)
    async with TestNatsBroker(last_chance.broker):
        await last_chance.publish_event(flaky)  # the only delivery: no retry left
    assert last_letters.errors == ["RuntimeError: try again later"]


async def test_request_reply_answers_and_reports_errors(bus: Bus, letters: Letters) -> None:
    assert await bus.request("bazaar.rpc.test.double", {"x": 21}) == {"doubled": 42}
    for payload, code in (({"x": "many"}, "bad_request"), ({"x": "boom"}, "internal")):
        with pytest.raises(RemoteError) as refused:
            await bus.request("bazaar.rpc.test.double", payload)
        assert refused.value.code == code
    with pytest.raises(RemoteError) as nobody:
        await bus.request("bazaar.rpc.nobody.home", {}, timeout=0.3)
    assert nobody.value.code == "unavailable"
