"""The transport interface: what `Bus` needs of a broker, and nothing of the rules on top.

A transport moves bytes with headers: it publishes and waits until the broker has stored
the message, hands each delivery of a durable subscription to a callback that settles it
(ack, or "deliver again after a delay"), answers and sends requests, and keeps dead
letters. Envelopes, contracts, retries, the delivery limit and metrics are `Bus`'s, once,
for every broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from bazaar.platform.backoff import backoff
from bazaar.platform.events import DEADLETTER_CONSUMER_HEADER, DEADLETTER_PREFIX
from bazaar.platform.logs import get_logger

log = get_logger(__name__)

Connection = TypeVar("Connection")

Headers = Mapping[str, str]


def redacted(url: str) -> str:
    """The URL for a log line: its password (if any) as ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


async def until_connected(connect: Callable[[], Awaitable[Connection]], url: str) -> Connection:
    """`connect()`, tried again until the broker answers. A service that starts while its
    broker is down (starting later, restarting) waits for it instead of exiting: an exit
    would only be restarted by its supervisor, into the same wait. The error is logged at
    every attempt, so a wrong address or password shows in the log."""
    attempt = 0
    while True:
        try:
            return await connect()
        except Exception as exc:  # each client has its own errors; every one means "not yet"
            attempt += 1
            delay = backoff(attempt, initial=0.5, maximum=5.0)
            log.warning(
                "broker not reachable, trying again",
                broker=url,
                attempt=attempt,
                retry_in=round(delay, 1),
                error=f"{type(exc).__name__}: {exc}",
            )
            await asyncio.sleep(delay)


class NoResponders(Exception):
    """Nobody answers requests on the subject right now (a responder restarting)."""


class PublishIncomplete(Exception):
    """`publish_events` failed part-way: the first `acknowledged` events are stored, the
    rest may or may not be. The cause is the first failure."""

    def __init__(self, acknowledged: int) -> None:
        super().__init__(f"only the first {acknowledged} events were acknowledged")
        self.acknowledged = acknowledged


class DeadLetterNotFound(LookupError):
    """No dead letter has this number (never had one, or it was replayed)."""


@dataclass(frozen=True)
class Outgoing:
    """A message to publish. `message_id` is the event's id: JetStream drops a second copy
    within its duplicate window; RabbitMQ has no such window (consumers' inboxes do it)."""

    subject: str
    body: bytes
    headers: Headers = field(default_factory=dict)
    message_id: str | None = None


class Delivery(Protocol):
    """One delivery of a durable subscription's message. Settle it exactly once."""

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Headers: ...

    @property
    def attempt(self) -> int:
        """1 for the first delivery, 2 for the first redelivery..."""

    async def ack(self) -> None: ...

    async def retry(self, delay: float) -> None:
        """Give the message back, to be delivered again no sooner than `delay` s."""


DeliveryHandler = Callable[[Delivery], Awaitable[None]]
# A responder: the request's body and headers in, the reply's body out.
Answer = Callable[[bytes, Headers], Awaitable[bytes]]


@dataclass(frozen=True)
class Subscription:
    """Every event on `subject`, to one of the processes sharing the durable `name`
    (replicas of a service), at most `capacity` handled at once. `dead_letters` is the
    subject of what the broker itself gives up on (RabbitMQ's delivery limit)."""

    subject: str
    name: str
    capacity: int
    dead_letters: str


class Transport(Protocol):
    """One broker. Declare subscriptions and responders, then `start`."""

    def subscribe(self, subscription: Subscription, handle: DeliveryHandler) -> None: ...

    def respond(self, subject: str, group: str, answer: Answer) -> None: ...

    async def start(self) -> None:
        """Connect, declare what the broker needs, start consuming and answering."""

    async def stop(self) -> None:
        """Stop consuming (what is in hand comes back later), then disconnect."""

    async def ping(self) -> bool: ...

    async def publish(self, message: Outgoing, timeout: float) -> None:  # noqa: ASYNC109
        """Return once the broker has stored the message (JetStream's ack, RabbitMQ's
        publisher confirm)."""

    async def publish_many(self, messages: Sequence[Outgoing], timeout: float) -> None:  # noqa: ASYNC109
        """Publish in order, pipelined; `PublishIncomplete` says how many leading ones are
        stored when not all are."""

    async def publish_dead_letter(self, message: Outgoing) -> None: ...

    async def request(self, subject: str, body: bytes, headers: Headers, timeout: float) -> bytes:  # noqa: ASYNC109
        """The reply's body; `NoResponders`, `TimeoutError`, or the broker's error."""


# --- dead letters, as the operator's tool sees them -------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    seq: int  # what `replay` takes: the stream sequence (NATS), a digest (RabbitMQ)
    subject: str
    consumer: str
    event_type: str
    error: str
    time: datetime | None  # when it was dead-lettered
    envelope_id: str  # "" if the body is not an envelope
    body: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "subject": self.subject,
            "consumer": self.consumer,
            "event_type": self.event_type,
            "error": self.error,
            "time": self.time.isoformat() if self.time else None,
            "envelope_id": self.envelope_id,
        }


class DeadLetterStore(Protocol):
    """The dead letters of one broker: listed, and replayed on their event subject."""

    async def list_all(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""

    async def replay(self, seq: int) -> DeadLetter:
        """Publish dead letter `seq` again on its event subject, then remove it."""

    async def replay_all(self) -> list[DeadLetter]: ...


class DeadLetterSession(Protocol):
    async def __aenter__(self) -> DeadLetterStore: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def consumer_and_type(subject: str, headers: Mapping[str, Any]) -> tuple[str, str]:
    """Who gave up on what, from a dead letter's subject `bazaar.deadletter.<consumer>.<type>`."""
    rest = subject.removeprefix(DEADLETTER_PREFIX)
    consumer = str(headers.get(DEADLETTER_CONSUMER_HEADER) or rest.split(".", 1)[0])
    return consumer, rest.removeprefix(f"{consumer}.")


def envelope_id(body: bytes) -> str:
    try:
        envelope = json.loads(body)
    except ValueError:
        return ""
    identifier = envelope.get("id") if isinstance(envelope, dict) else None
    return identifier if isinstance(identifier, str) else ""


def digest(*parts: bytes) -> int:
    """A stable number for a message that carries none: 12 decimal digits at most."""
    hashed = hashlib.blake2b(b"\0".join(parts), digest_size=8).digest()
    return int.from_bytes(hashed, "big") % 10**12
