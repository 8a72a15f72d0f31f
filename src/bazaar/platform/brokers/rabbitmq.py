"""RabbitMQ (AMQP 0-9-1, aio-pika), run the way its most careful users run it.

Topology, declared by every transport at start (idempotent):

- `bazaar.events`, one topic exchange; an event's routing key is its subject
  (`bazaar.events.order.paid`), the same name it has on NATS. One exchange rather than
  one per event family: consumers bind by subject either way, the AsyncAPI document
  keeps one name per channel on both brokers, and what a producer may publish is limited
  per routing key by RabbitMQ's topic permissions, which is what separate exchanges would
  buy. Its alternate exchange `bazaar.unrouted` keeps events no queue was bound for yet
  (published before their consumer ever started) in queue `bazaar.unrouted`, rather than
  dropping them.
- one durable quorum queue per consuming service and event type,
  `bazaar.<consumer>-<type>`, shared by that service's replicas (each event is handled
  by one of them), bound to the event's subject. Quorum queues are replicated by Raft
  and confirm a message once a majority of members have written it to disk.
- manual acks, `prefetch` = the bus's capacity per consumer. A handler that fails keeps
  the message for the retry delay and then returns it (`nack`, requeue): quorum queues
  have no delayed redelivery, and returning at once would spin. A delivery whose channel
  closed (broker restart) is neither held nor handled any more: the broker has it back
  and delivers it again on the reopened channel. The broker counts
  deliveries (`x-delivery-count`), which `Delivery.attempt` reads, and past
  `x-delivery-limit` (a guard for consumers that crash on a message before they can
  settle it) dead-letters the message itself, at least once, to `bazaar.deadletter`.
- `bazaar.deadletter`, a topic exchange, and the quorum queue `bazaar.deadletter`
  bound to all of it. The bus publishes its own dead letters there (confirmed) with
  `x-error`, then acks the original, so the error is kept; the broker's own carry
  `x-death` instead.
- publisher confirms on every publication of events and dead letters: `publish` returns
  once the broker has the message (so the outbox marks a row only then). Events are
  persistent and carry the event id as `message_id`; RabbitMQ keeps no duplicate window,
  so a second copy is delivered and consumers' inboxes drop it.
- request/reply: requests go through the default exchange to a queue named by the
  subject, declared (auto-delete, not durable) by its responders and shared by them;
  the caller waits on RabbitMQ's direct reply-to pseudo-queue `amq.rabbitmq.reply-to`
  (no reply queue at all), publishing with `mandatory` so that a subject nobody answers
  comes back at once as `NoResponders`, and with an expiration equal to its timeout so
  that a request nobody took in time is dropped rather than answered late.

The connection is aio-pika's robust one: after a broker restart it reconnects and
declares its channels, queues, bindings and consumers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aiormq.exceptions import PublishError

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
    digest,
    envelope_id,
    redacted,
    until_connected,
)
from bazaar.platform.events import DEADLETTER_ERROR_HEADER, event_subject
from bazaar.platform.logs import get_logger

log = get_logger(__name__)

EVENTS_EXCHANGE = "bazaar.events"
UNROUTED_EXCHANGE = UNROUTED_QUEUE = "bazaar.unrouted"
DEADLETTER_EXCHANGE = DEADLETTER_QUEUE = "bazaar.deadletter"
REPLY_TO = "amq.rabbitmq.reply-to"
DEAD_LETTERED_AT = "x-dead-lettered-at"
# The broker's own guard against a message that kills its consumer before it can be
# settled; above the bus's default deliveries (12), so that the bus dead-letters first
# and keeps the error.
DELIVERY_LIMIT = 20
QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}


def queue_name(subscription: Subscription) -> str:
    return f"bazaar.{subscription.name}"


def _consumer_queue_arguments(subscription: Subscription) -> dict[str, Any]:
    return {
        **QUORUM,
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEADLETTER_EXCHANGE,
        "x-dead-letter-routing-key": subscription.dead_letters,
        # At-least-once dead-lettering (quorum queues): the message leaves the queue only
        # once the dead-letter queue confirmed it; it needs reject-publish on overflow.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_common(channel: AbstractChannel) -> tuple[AbstractExchange, AbstractExchange]:
    """The exchanges and queues every process needs; the events and dead-letter exchanges."""
    unrouted = await channel.declare_exchange(UNROUTED_EXCHANGE, ExchangeType.FANOUT, durable=True)
    events = await channel.declare_exchange(
        EVENTS_EXCHANGE,
        ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": UNROUTED_EXCHANGE},
    )
    letters = await channel.declare_exchange(DEADLETTER_EXCHANGE, ExchangeType.TOPIC, durable=True)
    kept = await channel.declare_queue(UNROUTED_QUEUE, durable=True, arguments=QUORUM)
    await kept.bind(unrouted)
    dead = await channel.declare_queue(DEADLETTER_QUEUE, durable=True, arguments=QUORUM)
    await dead.bind(letters, "#")
    return events, letters


def text_headers(message: AbstractIncomingMessage) -> dict[str, str]:
    """AMQP header values are typed (numbers, tables, bytes); the bus deals in text."""
    headers: dict[str, str] = {}
    for key, value in (message.headers or {}).items():
        headers[key] = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return headers


def _message(message: Outgoing, **properties: Any) -> aio_pika.Message:
    return aio_pika.Message(
        message.body,
        headers=dict(message.headers),
        message_id=message.message_id,
        delivery_mode=DeliveryMode.PERSISTENT,
        **properties,
    )


class RabbitDelivery:
    def __init__(self, message: AbstractIncomingMessage) -> None:
        self._message = message
        # The channel it came on: its delivery tag means nothing on any other, and once
        # that channel is closed (a broker restart, a lost connection) the broker has put
        # the message back in its queue and delivers it again on the reopened channel.
        self._channel = message.channel
        self.body = message.body
        self.headers: Headers = text_headers(message)

    @property
    def orphaned(self) -> bool:
        """Its channel is gone: the message is (or will be) delivered again."""
        return self._channel.is_closed

    @property
    def attempt(self) -> int:
        count = (self._message.headers or {}).get("x-delivery-count", 0)
        return int(count) + 1 if isinstance(count, int) else 1

    async def ack(self) -> None:
        with contextlib.suppress(Exception):  # channel gone: the broker delivers it again
            await self._message.ack()

    async def retry(self, delay: float) -> None:
        # Held for the delay, then given back. But once its channel closes, the broker
        # has it back already and hands it out again at once: holding on would keep a
        # handler of a dead delivery alive beside the new one (the backoff is lost for
        # that one delivery, not the message).
        closing = self._channel.closing
        await asyncio.wait([closing], timeout=delay)
        if closing.done():
            return
        with contextlib.suppress(Exception):
            await self._message.nack(requeue=True)


async def _unless_orphaned(handle: DeliveryHandler, delivery: RabbitDelivery) -> None:
    # A delivery whose channel closed before its handler began (the reconnection came
    # first) is not handled: the broker delivers it again on the new channel, and two
    # handlers of one message would both queue for the service's database.
    if not delivery.orphaned:
        await handle(delivery)


class RabbitTransport:
    def __init__(self, url: str, service: str) -> None:
        self.url = url
        self.service = service
        self._subscriptions: list[tuple[Subscription, DeliveryHandler]] = []
        self._responders: list[tuple[str, Answer]] = []
        self._connection: AbstractRobustConnection | None = None
        self._publishing: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._letters: AbstractExchange | None = None
        self._requesting: AbstractChannel | None = None
        self._replies: dict[str, asyncio.Future[bytes]] = {}
        self._reply_lock = asyncio.Lock()
        self._reply_underlay: object = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.declared_queues: list[str] = []

    # --- declarations -----------------------------------------------------------------

    def subscribe(self, subscription: Subscription, handle: DeliveryHandler) -> None:
        self._subscriptions.append((subscription, handle))

    def respond(self, subject: str, group: str, answer: Answer) -> None:
        self._responders.append((subject, answer))

    # --- lifetime ---------------------------------------------------------------------

    async def start(self) -> None:
        self._connection = await until_connected(self._connect, redacted(self.url))
        self._publishing = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._events, self._letters = await declare_common(self._publishing)
        for subscription, handle in self._subscriptions:
            await self._consume(subscription, handle)
        for subject, answer in self._responders:
            await self._answer(subject, answer)
        await self._listen_for_replies()

    async def _connect(self) -> AbstractRobustConnection:
        # Robust: once connected, aio-pika reconnects and restores channels by itself.
        return await aio_pika.connect_robust(
            self.url,
            client_properties={"connection_name": f"bazaar-{self.service}"},
            reconnect_interval=1.0,
        )

    async def stop(self) -> None:
        connection, self._connection = self._connection, None
        tasks = list(self._tasks)
        for task in tasks:  # unacknowledged, what they held goes back to its queue
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for waiting in self._replies.values():
            waiting.cancel()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def ping(self) -> bool:
        connection = self._connection
        return bool(connection and not connection.is_closed and connection.connected.is_set())

    # --- consuming --------------------------------------------------------------------

    async def _consume(self, subscription: Subscription, handle: DeliveryHandler) -> None:
        assert self._connection is not None and self._events is not None
        channel = await self._connection.channel()
        # Per consumer (not global): at most `capacity` unacknowledged messages in hand.
        await channel.set_qos(prefetch_count=subscription.capacity)
        name = queue_name(subscription)
        queue = await channel.declare_queue(
            name, durable=True, arguments=_consumer_queue_arguments(subscription)
        )
        self.declared_queues.append(name)
        await queue.bind(EVENTS_EXCHANGE, subscription.subject)

        async def arrived(message: AbstractIncomingMessage) -> None:
            self._spawn(_unless_orphaned(handle, RabbitDelivery(message)))

        await queue.consume(arrived, no_ack=False)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- publishing -------------------------------------------------------------------

    async def publish(self, message: Outgoing, timeout: float) -> None:  # noqa: ASYNC109
        await self._exchange().publish(_message(message), message.subject, timeout=timeout)

    async def publish_many(self, messages: Sequence[Outgoing], timeout: float) -> None:  # noqa: ASYNC109
        exchange = self._exchange()
        # Tasks start in order and write their frames in order; only the confirms overlap.
        pending = [
            asyncio.ensure_future(exchange.publish(_message(m), m.subject, timeout=timeout))
            for m in messages
        ]
        if pending:
            await asyncio.wait(pending)
        failures = [future.exception() for future in pending]  # each one looked at
        for acknowledged, failure in enumerate(failures):
            if failure is not None:
                raise PublishIncomplete(acknowledged) from failure

    async def publish_dead_letter(self, message: Outgoing) -> None:
        if self._letters is None:
            raise ConnectionError("the bus is not started")
        stamped = {**message.headers, DEAD_LETTERED_AT: datetime.now(UTC).isoformat()}
        letter = Outgoing(message.subject, message.body, stamped, message.message_id)
        await self._letters.publish(_message(letter), message.subject, timeout=5.0)

    def _exchange(self) -> AbstractExchange:
        if self._events is None:
            raise ConnectionError("the bus is not started")
        return self._events

    # --- request/reply ----------------------------------------------------------------

    async def _answer(self, subject: str, answer: Answer) -> None:
        assert self._connection is not None
        channel = await self._connection.channel()
        queue = await channel.declare_queue(subject, durable=False, auto_delete=True)

        async def reply(request: AbstractIncomingMessage) -> None:
            body = await answer(request.body, text_headers(request))
            if not request.reply_to:
                return
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(body, correlation_id=request.correlation_id),
                    request.reply_to,
                )
            except Exception as exc:  # the connection went: the caller times out
                log.warning("reply not sent", subject=subject, error=repr(exc))

        async def arrived(request: AbstractIncomingMessage) -> None:
            self._spawn(reply(request))

        await queue.consume(arrived, no_ack=True)

    async def _listen_for_replies(self) -> None:
        assert self._connection is not None
        # Direct reply-to: the pseudo-queue is consumed (no-ack) on the channel requests
        # are published on, before the first request.
        self._requesting = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await self._reply_consumer()

    async def _reply_consumer(self) -> AbstractChannel:
        """The requests' channel, consuming replies. A reconnection gives it a new
        underlying channel, on which the robust connection does not consume the
        pseudo-queue again (it is no real queue): this does, before the next request."""
        assert self._requesting is not None
        async with self._reply_lock:
            underlay = await self._requesting.get_underlay_channel()
            if underlay is not self._reply_underlay:
                replies = await self._requesting.get_queue(REPLY_TO, ensure=False)
                await replies.consume(self._reply_arrived, no_ack=True)
                self._reply_underlay = underlay
        return self._requesting

    async def _reply_arrived(self, message: AbstractIncomingMessage) -> None:
        waiting = self._replies.pop(message.correlation_id or "", None)
        if waiting is not None and not waiting.done():
            waiting.set_result(message.body)

    async def request(self, subject: str, body: bytes, headers: Headers, timeout: float) -> bytes:  # noqa: ASYNC109
        if self._requesting is None:
            raise ConnectionError("the bus is not started")
        correlation = uuid.uuid4().hex
        waiting: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._replies[correlation] = waiting
        try:
            async with asyncio.timeout(timeout):  # a broker down waits here, up to the end
                channel = await self._reply_consumer()
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body,
                        headers=dict(headers),
                        correlation_id=correlation,
                        reply_to=REPLY_TO,
                        expiration=timeout,
                    ),
                    subject,
                    mandatory=True,  # no queue: returned at once, not lost silently
                )
                return await waiting
        except PublishError as exc:
            raise NoResponders(subject) from exc
        finally:
            self._replies.pop(correlation, None)


# --- dead letters ------------------------------------------------------------------------


def read_dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    headers = text_headers(message)
    subject = message.routing_key or ""
    consumer, event_type = consumer_and_type(subject, headers)
    when = _dead_lettered_at(message)
    error = headers.get(DEADLETTER_ERROR_HEADER) or _broker_reason(message)
    return DeadLetter(
        seq=digest(message.body, subject.encode(), str(when).encode()),
        subject=subject,
        consumer=consumer,
        event_type=event_type,
        error=error,
        time=when,
        envelope_id=envelope_id(message.body),
        body=message.body,
    )


def _dead_lettered_at(message: AbstractIncomingMessage) -> datetime | None:
    raw = (message.headers or {}).get(DEAD_LETTERED_AT)
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(raw)
    deaths = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        when = deaths[0].get("time")
        return when if isinstance(when, datetime) else None
    return None


def _broker_reason(message: AbstractIncomingMessage) -> str:
    reason = (message.headers or {}).get("x-first-death-reason", "unknown")
    if isinstance(reason, bytes):
        reason = reason.decode()
    return f"dead-lettered by RabbitMQ ({reason}): its consumer never settled it"


class RabbitDeadLetters:
    """The dead-letter queue. AMQP cannot browse a queue, so listing takes every letter
    (unacknowledged) and gives them all back by closing the channel; replaying publishes
    a letter's body again on its event subject (confirmed) and only then acks it away."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self._connection = connection

    @classmethod
    def connect(cls, url: str, *, timeout: float = 5.0) -> _Connecting:
        return _Connecting(url, timeout)

    async def list_all(self) -> list[DeadLetter]:
        async with self._taken() as taken:
            return [letter for letter, _ in taken]

    async def replay(self, seq: int) -> DeadLetter:
        async with self._taken() as taken:
            for letter, message in taken:
                if letter.seq == seq:
                    await self._replay(letter, message)
                    return letter
        raise DeadLetterNotFound(f"no dead letter #{seq}")

    async def replay_all(self) -> list[DeadLetter]:
        async with self._taken() as taken:
            for letter, message in taken:
                await self._replay(letter, message)
            return [letter for letter, _ in taken]

    async def _replay(self, letter: DeadLetter, message: AbstractIncomingMessage) -> None:
        channel = await self._connection.channel(publisher_confirms=True)
        again = Outgoing(
            event_subject(letter.event_type),
            letter.body,
            {"ce-type": letter.event_type},
            letter.envelope_id or None,
        )
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        await exchange.publish(_message(again), again.subject, timeout=5.0)
        await channel.close()
        await message.ack()

    @contextlib.asynccontextmanager
    async def _taken(self) -> Any:
        channel = await self._connection.channel()
        await declare_common(channel)
        queue: AbstractQueue = await channel.declare_queue(
            DEADLETTER_QUEUE, durable=True, arguments=QUORUM
        )
        taken: list[tuple[DeadLetter, AbstractIncomingMessage]] = []
        try:
            # Unacknowledged, a message taken is not handed out again: the loop ends.
            while message := await queue.get(no_ack=False, fail=False, timeout=5.0):
                taken.append((read_dead_letter(message), message))
            taken.sort(key=lambda pair: pair[0].time or datetime.min.replace(tzinfo=UTC))
            yield taken
        finally:
            await channel.close()  # what was not acked goes back to the queue


class _Connecting:
    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> RabbitDeadLetters:
        self._connection = await aio_pika.connect(self._url, timeout=self._timeout)
        return RabbitDeadLetters(self._connection)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._connection is not None:
            await self._connection.close()
