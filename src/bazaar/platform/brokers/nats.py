"""NATS JetStream, the embedded default.

The transport connects, publishes, consumes (`jetstream.PullConsumer`) and answers
through nats-py directly (FastStream's per-message pipeline, which it used before, cost
more CPU than the work itself). Tests without a server use `memory://`.

Events go to stream BAZAAR_EVENTS (7 days), dead letters to BAZAAR_DEADLETTER (30 days).
Each subscription is a durable pull consumer, created from the stream's first event and
then left alone (it remembers what was acked). `Nats-Msg-Id` (the event id) makes the
server drop a second copy within its duplicate window (two minutes).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, NotJSMessageError
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, StreamConfig
from nats.js.errors import NotFoundError

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
    redacted,
    until_connected,
)
from bazaar.platform.events import (
    DEADLETTER_ERROR_HEADER,
    DEADLETTER_PREFIX,
    DEADLETTER_STREAM,
    EVENTS_PREFIX,
    EVENTS_STREAM,
    event_subject,
)
from bazaar.platform.jetstream import PullConsumer, declare_stream, ensure_durable
from bazaar.platform.logs import get_logger

log = get_logger(__name__)

MESSAGE_ID_HEADER = "Nats-Msg-Id"


@dataclass(frozen=True)
class NatsDelivery:
    msg: Msg

    @property
    def body(self) -> bytes:
        return self.msg.data

    @property
    def headers(self) -> Headers:
        return self.msg.headers or {}

    @property
    def attempt(self) -> int:
        try:
            metadata = self.msg.metadata
        except NotJSMessageError:  # a core NATS message
            return 1
        delivered = getattr(metadata, "num_delivered", None)
        return int(delivered) if delivered else 1

    async def ack(self) -> None:
        await self.msg.ack()

    async def retry(self, delay: float) -> None:
        await self.msg.nak(delay=delay)


@dataclass
class _ServerConnection:
    """The connection to the NATS server, while the transport runs."""

    connection: NatsClient
    js: JetStreamContext
    consumers: list[PullConsumer] = field(default_factory=list)


def stream_replicas(url: str) -> int:
    """How many copies JetStream keeps of each stream (and of its durable consumers,
    which follow their stream): three when the URL names a cluster of three or more
    servers, so that losing any one node loses no acknowledged event; one otherwise."""
    return 3 if len(url.split(",")) >= 3 else 1


class NatsTransport:
    def __init__(self, url: str, service: str) -> None:
        self.service = service
        self._servers = url.split(",")
        replicas = stream_replicas(url)
        self._events = StreamConfig(name=EVENTS_STREAM, max_age=7 * 86400, num_replicas=replicas)
        self._deadletters = StreamConfig(
            name=DEADLETTER_STREAM, max_age=30 * 86400, num_replicas=replicas
        )
        self._subscriptions: list[tuple[Subscription, DeliveryHandler]] = []
        self._responders: list[tuple[str, str, Answer]] = []
        self._server: _ServerConnection | None = None

    @property
    def connection(self) -> NatsClient:
        """The connection to the server, once started (tests look at JetStream with it)."""
        return self._running().connection

    # --- declarations -----------------------------------------------------------------

    def subscribe(self, subscription: Subscription, handle: DeliveryHandler) -> None:
        self._subscriptions.append((subscription, handle))

    def respond(self, subject: str, group: str, answer: Answer) -> None:
        self._responders.append((subject, group, answer))

    # --- lifetime ---------------------------------------------------------------------

    async def _connect(self) -> NatsClient:
        return await nats.connect(
            self._servers,
            max_reconnect_attempts=-1,  # once connected, ride out broker restarts
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=_connection_error,
            reconnected_cb=_reconnected,
        )

    async def start(self) -> None:
        if self._server is not None:
            return
        connection = await until_connected(self._connect, ",".join(map(redacted, self._servers)))
        server = _ServerConnection(connection, connection.jetstream())
        self._server = server
        await declare_stream(server.js, self._events, EVENTS_PREFIX + ">")
        await declare_stream(server.js, self._deadletters, DEADLETTER_PREFIX + ">")
        for subscription, handle in self._subscriptions:
            await ensure_durable(server.js, EVENTS_STREAM, subscription.name, subscription.subject)
            pull = PullConsumer(
                connection,
                EVENTS_STREAM,
                subscription.name,
                functools.partial(_deliver, handle),
                capacity=subscription.capacity,
            )
            await pull.start()
            server.consumers.append(pull)
        for subject, group, answer in self._responders:
            await connection.subscribe(subject, queue=group, cb=_responder(subject, answer))
        # Subscriptions are live on the server once start() returns: no request sent
        # right after finds "no responders".
        await connection.flush()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        for pull in server.consumers:
            await pull.stop()
        await server.connection.drain()  # replies in flight still go out

    async def ping(self) -> bool:
        """Connected, or connected again within a second (a reconnection under way)."""
        if self._server is None:
            return False
        connection = self._server.connection
        for _ in range(10):
            if connection.is_connected:
                return True
            await asyncio.sleep(0.1)
        return connection.is_connected

    # --- publishing -------------------------------------------------------------------

    async def publish(self, message: Outgoing, timeout: float) -> None:  # noqa: ASYNC109
        await self._publish(message, EVENTS_STREAM, timeout)

    async def publish_dead_letter(self, message: Outgoing) -> None:
        await self._publish(message, DEADLETTER_STREAM, 5.0)

    async def publish_many(self, messages: Sequence[Outgoing], timeout: float) -> None:  # noqa: ASYNC109
        if len(messages) < 2:
            for done, message in enumerate(messages):
                try:
                    await self.publish(message, timeout)
                except Exception as exc:
                    raise PublishIncomplete(done) from exc
            return
        js = self._running().js
        pending: list[asyncio.Future[Any]] = []
        try:
            # Sent in order by awaiting each send; only the acknowledgements overlap.
            for message in messages:
                pending.append(
                    await js.publish_async(
                        message.subject,
                        message.body,
                        stream=EVENTS_STREAM,
                        headers=_headers(message),
                    )
                )
            async with asyncio.timeout(timeout):
                await asyncio.wait(pending)
        except Exception as exc:
            raise PublishIncomplete(leading_successes(pending)) from exc
        finally:
            for future in pending:
                future.cancel()  # an acknowledgement that never came frees its slot
        acknowledged = leading_successes(pending)
        if acknowledged < len(messages):
            raise PublishIncomplete(acknowledged) from pending[acknowledged].exception()

    async def _publish(self, message: Outgoing, stream: str, timeout: float) -> None:  # noqa: ASYNC109
        await self._running().js.publish(
            message.subject, message.body, timeout=timeout, stream=stream, headers=_headers(message)
        )

    # --- request/reply ----------------------------------------------------------------

    async def request(self, subject: str, body: bytes, headers: Headers, timeout: float) -> bytes:  # noqa: ASYNC109
        connection = self._running().connection
        try:
            reply = await connection.request(
                subject, body, timeout=timeout, headers=dict(headers) or None
            )
        except NoRespondersError as exc:
            raise NoResponders(subject) from exc
        return reply.data

    def _running(self) -> _ServerConnection:
        if self._server is None:
            raise RuntimeError("the NATS transport is not started")
        return self._server


def _headers(message: Outgoing) -> dict[str, str]:
    headers = dict(message.headers)
    if message.message_id:
        headers[MESSAGE_ID_HEADER] = message.message_id
    return headers


async def _deliver(handle: DeliveryHandler, msg: Msg) -> None:
    await handle(NatsDelivery(msg))


def _responder(subject: str, answer: Answer) -> Any:
    async def respond(msg: Msg) -> None:
        reply = await answer(msg.data, msg.headers or {})
        try:
            await msg.respond(reply)
        except Exception as exc:  # the connection went: the caller times out
            log.warning("reply not sent", subject=subject, error=repr(exc))

    return respond


def leading_successes(futures: Sequence[asyncio.Future[Any]]) -> int:
    count = 0
    for future in futures:
        if not future.done() or future.cancelled() or future.exception() is not None:
            break
        count += 1
    return count


async def _connection_error(error: Exception) -> None:
    log.warning("nats connection error", error=repr(error))


async def _reconnected() -> None:
    log.info("nats reconnected")


# --- dead letters ------------------------------------------------------------------------


def read_dead_letter(message: RawStreamMsg) -> DeadLetter:
    """What a stored dead letter says: who gave up on which event, and why."""
    subject = message.subject or ""
    headers: Mapping[str, str] = message.headers or {}
    body = message.data or b""
    consumer, event_type = consumer_and_type(subject, headers)
    return DeadLetter(
        seq=int(message.seq or 0),
        subject=subject,
        consumer=consumer,
        event_type=event_type,
        error=str(headers.get(DEADLETTER_ERROR_HEADER) or ""),
        time=message.time,
        envelope_id=envelope_id(body),
        body=body,
    )


def replay_headers(letter: DeadLetter) -> dict[str, str]:
    # Unique per replay, or JetStream would drop it within its duplicate window.
    fresh = f"{letter.envelope_id or 'unparseable'}.replay.{uuid.uuid4().hex}"
    return {MESSAGE_ID_HEADER: fresh, "ce-type": letter.event_type}


class NatsDeadLetters:
    """The dead-letter stream: replaying publishes the body again on its event subject
    with a fresh `Nats-Msg-Id` (or the duplicate window would drop it), and deletes the
    letter only once the server has stored the new copy: a crash in between leaves both,
    and replaying again is harmless (consumers' inboxes know the envelope id)."""

    def __init__(self, client: NatsClient, *, timeout: float = 5.0) -> None:
        self._client = client
        self._stream: JetStreamContext = client.jetstream(timeout=timeout)

    @classmethod
    def connect(cls, url: str, *, timeout: float = 5.0) -> _Connecting:
        return _Connecting(url, timeout)

    async def list_all(self) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        seq = 1
        while True:
            try:
                message = await self._stream.get_msg(
                    DEADLETTER_STREAM, seq=seq, subject=DEADLETTER_PREFIX + ">", next=True
                )
            except NotFoundError:  # no message from seq on, or no stream at all
                return letters
            letter = read_dead_letter(message)
            letters.append(letter)
            seq = letter.seq + 1

    async def get(self, seq: int) -> DeadLetter:
        try:
            return read_dead_letter(await self._stream.get_msg(DEADLETTER_STREAM, seq=seq))
        except NotFoundError:
            raise DeadLetterNotFound(f"no dead letter #{seq}") from None

    async def replay(self, seq: int) -> DeadLetter:
        if seq < 1:
            raise DeadLetterNotFound(f"no dead letter #{seq}")
        letter = await self.get(seq)
        await self._stream.publish(
            event_subject(letter.event_type),
            letter.body,
            headers=replay_headers(letter),
            stream=EVENTS_STREAM,
        )
        await self._stream.delete_msg(DEADLETTER_STREAM, seq)
        return letter

    async def replay_all(self) -> list[DeadLetter]:
        return [await self.replay(letter.seq) for letter in await self.list_all()]


async def _quiet(error: Exception) -> None:
    """The caller gets the error raised; nats-py would also print it."""


class _Connecting:
    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._client: NatsClient | None = None

    async def __aenter__(self) -> NatsDeadLetters:
        # A one-shot tool: try each server twice, then give up (0 would mean forever).
        async with asyncio.timeout(3 * self._timeout):
            self._client = await nats.connect(
                self._url.split(","),
                connect_timeout=self._timeout,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=_quiet,
            )
        return NatsDeadLetters(self._client, timeout=self._timeout)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()
