"""A broker in this process, for tests: `memory://NAME`.

Every transport with the same NAME on the same event loop shares one broker, so two
`Bus` objects of a test talk to each other, and the next test (a new loop) starts empty.
Semantics are the real brokers' where tests lean on them, without the network:

- publishing hands the message to one member of every subscription of its subject and
  returns once the handlers have settled it (a test asserts right after publishing);
- a subscription outlives its members: while none runs, its messages wait for the next;
  a message published before any subscription of its subject existed reaches nobody
  (as on RabbitMQ);
- `retry(delay)` delivers again after `delay` seconds with `attempt` + 1;
- dead letters are kept, listed and replayed like a real broker's;
- a request goes to one responder of its subject; with none, `NoResponders`.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from bazaar.platform.brokers.base import (
    Answer,
    DeadLetter,
    DeadLetterNotFound,
    DeliveryHandler,
    Headers,
    NoResponders,
    Outgoing,
    PublishIncomplete,
    Subscription,
    consumer_and_type,
    envelope_id,
)
from bazaar.platform.events import DEADLETTER_ERROR_HEADER, event_subject


@dataclass
class _Message:
    body: bytes
    headers: Headers
    attempt: int = 1


@dataclass
class _Member:
    handle: DeliveryHandler
    transport: MemoryTransport


@dataclass
class _Group:
    """A durable subscription: its members share the messages, one each."""

    members: list[_Member] = field(default_factory=list)
    backlog: deque[_Message] = field(default_factory=deque)
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def pick(self) -> _Member | None:
        return self.members[next(self.turn) % len(self.members)] if self.members else None


@dataclass
class _Letter:
    seq: int
    message: Outgoing
    time: datetime


class MemoryBroker:
    def __init__(self) -> None:
        self.groups: dict[str, dict[str, _Group]] = {}
        self.responders: dict[str, list[Answer]] = {}
        self.dead_letters: dict[int, _Letter] = {}
        self._sequence = itertools.count(1)
        self._turn = itertools.count()

    async def publish(self, subject: str, message: _Message) -> None:
        for group in list(self.groups.get(subject, {}).values()):
            await self.deliver(group, message)

    async def deliver(self, group: _Group, message: _Message) -> None:
        member = group.pick()
        if member is None:
            group.backlog.append(message)
            return
        await member.handle(_MemoryDelivery(self, group, message))

    def redeliver_later(self, group: _Group, message: _Message, delay: float) -> None:
        again = _Message(message.body, message.headers, message.attempt + 1)
        loop = asyncio.get_running_loop()
        loop.call_later(delay, lambda: _spawn(self.deliver(group, again)))

    def add_dead_letter(self, message: Outgoing) -> None:
        seq = next(self._sequence)
        self.dead_letters[seq] = _Letter(seq, message, datetime.now(UTC))

    def responder(self, subject: str) -> Answer:
        answers = self.responders.get(subject)
        if not answers:
            raise NoResponders(subject)
        return answers[next(self._turn) % len(answers)]


# Brokers by event loop, then name: a test's loop goes, and its brokers with it.
_BROKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, MemoryBroker]] = (
    weakref.WeakKeyDictionary()
)
_TASKS: set[asyncio.Task[None]] = set()


def broker_named(name: str) -> MemoryBroker:
    brokers = _BROKERS.setdefault(asyncio.get_running_loop(), {})
    return brokers.setdefault(name, MemoryBroker())


def _name(url: str) -> str:
    return url.split("://", 1)[1] or "default"


def _spawn(coroutine: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(coroutine)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


@dataclass
class _MemoryDelivery:
    broker: MemoryBroker
    group: _Group
    message: _Message

    @property
    def body(self) -> bytes:
        return self.message.body

    @property
    def headers(self) -> Headers:
        return self.message.headers

    @property
    def attempt(self) -> int:
        return self.message.attempt

    async def ack(self) -> None:
        pass

    async def retry(self, delay: float) -> None:
        self.broker.redeliver_later(self.group, self.message, delay)


class MemoryTransport:
    def __init__(self, url: str, service: str) -> None:
        self.service = service
        self._name = _name(url)
        self._subscriptions: list[tuple[Subscription, DeliveryHandler]] = []
        self._responders: list[tuple[str, Answer]] = []
        self._members: list[tuple[_Group, _Member]] = []
        self._running = False

    @property
    def broker(self) -> MemoryBroker:
        return broker_named(self._name)

    def subscribe(self, subscription: Subscription, handle: DeliveryHandler) -> None:
        self._subscriptions.append((subscription, handle))

    def respond(self, subject: str, group: str, answer: Answer) -> None:
        self._responders.append((subject, answer))

    async def start(self) -> None:
        broker = self.broker
        for subscription, handle in self._subscriptions:
            group = broker.groups.setdefault(subscription.subject, {}).setdefault(
                subscription.name, _Group()
            )
            member = _Member(handle, self)
            group.members.append(member)
            self._members.append((group, member))
            while group.backlog:  # what waited for a member
                _spawn(broker.deliver(group, group.backlog.popleft()))
        for subject, answer in self._responders:
            broker.responders.setdefault(subject, []).append(answer)
        self._running = True

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        broker = self.broker
        for group, member in self._members:
            group.members.remove(member)
        self._members.clear()
        for subject, answer in self._responders:
            broker.responders[subject].remove(answer)

    async def ping(self) -> bool:
        return self._running

    async def publish(self, message: Outgoing, timeout: float) -> None:  # noqa: ASYNC109
        await self.broker.publish(message.subject, _Message(message.body, dict(message.headers)))

    async def publish_many(self, messages: Sequence[Outgoing], timeout: float) -> None:  # noqa: ASYNC109
        for done, message in enumerate(messages):
            try:
                await self.publish(message, timeout)
            except Exception as exc:
                raise PublishIncomplete(done) from exc

    async def publish_dead_letter(self, message: Outgoing) -> None:
        self.broker.add_dead_letter(message)

    async def request(self, subject: str, body: bytes, headers: Headers, timeout: float) -> bytes:  # noqa: ASYNC109
        answer = self.broker.responder(subject)
        async with asyncio.timeout(timeout):
            return await answer(body, headers)


class MemoryDeadLetters:
    def __init__(self, broker: MemoryBroker, transport: MemoryTransport) -> None:
        self._broker = broker
        self._transport = transport

    @classmethod
    def connect(cls, url: str) -> _Session:
        return _Session(url)

    async def list_all(self) -> list[DeadLetter]:
        return [_read(letter) for letter in sorted(self._broker.dead_letters.values(), key=_seq)]

    async def replay(self, seq: int) -> DeadLetter:
        stored = self._broker.dead_letters.get(seq)
        if stored is None:
            raise DeadLetterNotFound(f"no dead letter #{seq}")
        letter = _read(stored)
        subject = event_subject(letter.event_type)
        again = Outgoing(subject, letter.body, {"ce-type": letter.event_type})
        await self._transport.publish(again, 5.0)
        self._broker.dead_letters.pop(seq, None)
        return letter

    async def replay_all(self) -> list[DeadLetter]:
        return [await self.replay(letter.seq) for letter in await self.list_all()]


def _seq(letter: _Letter) -> int:
    return letter.seq


def _read(letter: _Letter) -> DeadLetter:
    message = letter.message
    consumer, event_type = consumer_and_type(message.subject, message.headers)
    return DeadLetter(
        seq=letter.seq,
        subject=message.subject,
        consumer=consumer,
        event_type=event_type,
        error=str(message.headers.get(DEADLETTER_ERROR_HEADER) or ""),
        time=letter.time,
        envelope_id=envelope_id(message.body),
        body=message.body,
    )


class _Session:
    def __init__(self, url: str) -> None:
        self._url = url

    async def __aenter__(self) -> MemoryDeadLetters:
        transport = MemoryTransport(self._url, "deadletters")
        return MemoryDeadLetters(transport.broker, transport)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass
