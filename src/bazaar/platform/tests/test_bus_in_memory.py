"""The bus on the in-memory broker (`memory://`), as every service's tests use it: the
same rules as on a real server (test_bus.py)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from bazaar.platform.brokers import Outgoing
from bazaar.platform.brokers.memory import broker_named
from bazaar.platform.bus import BadRequest, Bus, PermanentError, RemoteError
from bazaar.platform.events import DEADLETTER_ERROR_HEADER, Envelope, new_event

BROKER = "bus"  # memory://, one broker per test (each test has its own loop)


@dataclass
class Letters:
    """The dead letters of the in-memory broker `name`, read when asked."""

    name: str = BROKER

    @property
    def subjects(self) -> list[str]:
        return [letter.message.subject for letter in self._all()]

    @property
    def errors(self) -> list[str]:
        return [letter.message.headers.get(DEADLETTER_ERROR_HEADER, "") for letter in self._all()]

    @property
    def bodies(self) -> list[bytes]:
        return [letter.message.body for letter in self._all()]

    def _all(self) -> list[Any]:
        return list(broker_named(self.name).dead_letters.values())


class Order(BaseModel):
    order_id: str


@pytest.fixture
def handled() -> list[Envelope]:
    return []


@pytest.fixture
def bus(handled: list[Envelope]) -> Bus:
    bus = Bus(f"memory://{BROKER}", "memory", max_deliveries=2)

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
    await bus.start()
    yield Letters()
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
    raw = body if isinstance(body, bytes) else body.encode()
    await bus.transport.publish(Outgoing("bazaar.events.order.paid", raw), 5.0)
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

    last_chance = Bus("memory://last-chance", "memory", max_deliveries=1)

    async def fail(event: Envelope) -> None:
        raise RuntimeError("try again later")

    last_chance.on_event("order.paid", "mailer", fail)
    await last_chance.start()
    await last_chance.publish_event(flaky)  # the only delivery: no retry left
    await last_chance.stop()
    last_letters = Letters("last-chance")
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
