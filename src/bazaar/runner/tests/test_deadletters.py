"""Dead letters on a real nats-server: listed with their error, replayed to their
consumer (past JetStream's duplicate window), and gone from the dead-letter stream."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from nats.js.api import RawStreamMsg

from bazaar.platform.bus import Bus, PermanentError
from bazaar.platform.events import Envelope, new_event
from bazaar.runner.deadletters import (
    DeadLetter,
    DeadLetterNotFound,
    DeadLetters,
    read_dead_letter,
    replay_headers,
)
from bazaar.testing import NatsServer


async def eventually(condition: Callable[[], object], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class Consumer:
    """Refuses every event until `fixed`, then records the ids it handles."""

    def __init__(self) -> None:
        self.fixed = False
        self.handled: list[str] = []

    async def handle(self, event: Envelope) -> None:
        if not self.fixed:
            raise PermanentError(f"product {event.data.get('product_id')} is unknown")
        self.handled.append(event.id)


@pytest.fixture
async def bus(nats: NatsServer) -> AsyncIterator[tuple[Bus, Consumer]]:
    consumer = Consumer()
    bus = Bus(nats.url, "cart")
    bus.on_event("order.created", "cart", consumer.handle)
    await bus.start()
    yield bus, consumer
    await bus.stop()


async def dead_lettered(letters: DeadLetters, count: int) -> list[DeadLetter]:
    deadline = asyncio.get_running_loop().time() + 10
    while len(found := await letters.list_all()) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{count} dead letters expected"
        await asyncio.sleep(0.05)
    return found


async def test_a_dead_letter_is_listed_replayed_to_its_consumer_and_removed(
    nats: NatsServer, bus: tuple[Bus, Consumer]
) -> None:
    producer, consumer = bus
    event = new_event("order.created", "order", {"product_id": "mug"}, subject="o-1")
    await producer.publish_event(event)
    async with DeadLetters.connect(nats.url) as letters:
        (letter,) = await dead_lettered(letters, 1)
        assert (letter.consumer, letter.event_type) == ("cart", "order.created")
        assert letter.subject == "bazaar.deadletter.cart.order.created"
        assert letter.envelope_id == event.id
        assert "PermanentError: product mug is unknown" in letter.error
        assert letter.time is not None and letter.time <= datetime.now(UTC)
        assert Envelope.model_validate_json(letter.body) == event

        consumer.fixed = True
        replayed = await letters.replay(letter.seq)
        assert replayed.envelope_id == event.id
        # Same envelope id, so inboxes still de-duplicate; a fresh Nats-Msg-Id, or the
        # broker would have dropped it as a copy of the first publication.
        await eventually(lambda: consumer.handled == [event.id])
        assert await letters.list_all() == []
        with pytest.raises(DeadLetterNotFound):
            await letters.replay(letter.seq)


async def test_replay_all_replays_every_letter_oldest_first(
    nats: NatsServer, bus: tuple[Bus, Consumer]
) -> None:
    producer, consumer = bus
    events = [new_event("order.created", "order", {"product_id": f"p{n}"}) for n in range(3)]
    for event in events:
        await producer.publish_event(event)
    async with DeadLetters.connect(nats.url) as letters:
        listed = await dead_lettered(letters, 3)
        consumer.fixed = True
        replayed = await letters.replay_all()
        assert [r.seq for r in replayed] == sorted(letter.seq for letter in listed)
        await eventually(lambda: sorted(consumer.handled) == sorted(e.id for e in events))
        assert await letters.list_all() == []


async def test_a_broker_without_dead_letters_lists_none(nats: NatsServer) -> None:
    async with DeadLetters.connect(nats.url) as letters:
        assert await letters.list_all() == []
        with pytest.raises(DeadLetterNotFound):
            await letters.replay(1)


def test_an_unparseable_dead_letter_still_says_where_it_came_from() -> None:
    stored = RawStreamMsg(
        subject="bazaar.deadletter.notification.order.paid",
        seq=7,
        data=b"{not json",
        headers={"x-error": "unparseable event: ..."},
    )
    letter = read_dead_letter(stored)
    assert (letter.seq, letter.consumer, letter.event_type) == (7, "notification", "order.paid")
    assert letter.envelope_id == "" and letter.error.startswith("unparseable")
    headers = replay_headers(letter)
    assert headers["ce-type"] == "order.paid"
    assert headers["Nats-Msg-Id"] != replay_headers(letter)["Nats-Msg-Id"]
