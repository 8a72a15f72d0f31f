"""The event bus: events out of the outbox, events into consumers, and request/reply.

Services talk to `Bus`, never to a broker's API. NATS JetStream is the broker. FastStream
makes the connection and gives tests its in-memory broker (`TestNatsBroker(bus.broker)`);
once connected to a real server, the bus publishes, consumes (`jetstream.PullConsumer`)
and answers through nats-py directly: FastStream's per-message pipeline (middlewares,
dependency injection, a thread hop to look up the message) cost more CPU than the work
itself. Both paths share the rules below, so tests on the in-memory broker check what
runs in production; `bus.broker.subscriber(...)` of a test's own runs in memory only.

Consumers get at-least-once delivery. A message that cannot be parsed, or whose handler
keeps failing, is moved to a dead-letter subject with its error, and the consumer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, NotJSMessageError
from nats.js import JetStreamContext
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from bazaar.platform import metrics
from bazaar.platform.backoff import backoff
from bazaar.platform.events import (
    DEADLETTER_CONSUMER_HEADER,
    DEADLETTER_ERROR_HEADER,
    DEADLETTER_PREFIX,
    DEADLETTER_STREAM,
    EVENTS_PREFIX,
    EVENTS_STREAM,
    Envelope,
    deadletter_subject,
    event_subject,
)
from bazaar.platform.jetstream import PullConsumer, declare_stream, ensure_durable
from bazaar.platform.logs import get_logger

log = get_logger(__name__)

# A dead letter keeps at most this much of the event's body (the broker's default payload
# limit is 1 MiB, headers included).
DEADLETTER_MAX_BODY = 512 * 1024
PUBLISH_TIMEOUT = 5.0
# A consumer handles up to this many events at once.
IN_FLIGHT = 20

EventHandler = Callable[[Envelope], Awaitable[None]]
RequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RemoteError(Exception):
    """A request/reply call answered with an error, or not at all."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class PermanentError(Exception):
    """Raised by an event handler for an event that no retry can fix (invalid data, a
    refusal that will not change): the event goes straight to the dead-letter subject."""


class BadRequest(Exception):
    """Raised by a request handler for input it refuses; the caller gets `bad_request`."""


class PublishIncomplete(Exception):
    """`publish_events` failed part-way: the first `acknowledged` events are stored, the
    rest may or may not be. The cause is the first failure."""

    def __init__(self, acknowledged: int) -> None:
        super().__init__(f"only the first {acknowledged} events were acknowledged")
        self.acknowledged = acknowledged


def make_broker(url: str) -> NatsBroker:
    scheme = url.split("://", 1)[0]
    if scheme in ("nats", "tls"):
        return NatsBroker(
            url.split(","),
            max_reconnect_attempts=-1,  # ride out broker restarts
            reconnect_time_wait=1,
            logger=None,
        )
    raise ValueError(f"unsupported BAZAAR_BROKER_URL scheme {scheme!r}: use nats://")


def stream_replicas(url: str) -> int:
    """How many copies JetStream keeps of each stream (and of its durable consumers,
    which follow their stream): three when the URL names a cluster of three or more
    servers, so that losing any one node loses no acknowledged event; one otherwise."""
    return 3 if len(url.split(",")) >= 3 else 1


# A handler that fails is retried with exponential backoff, capped: with the default
# deliveries that is about three minutes, longer than a neighbour's restart or a short
# outage (the mail relay down, a database failing over). Only an event that still fails
# then is dead-lettered, to be replayed once the cause is fixed (`bazaar deadletters`).
DEFAULT_MAX_DELIVERIES = 12
RETRY_MAX_DELAY = 30.0


def retry_delay(attempt: int) -> float:
    """Seconds before delivery `attempt + 1` of an event whose handler failed."""
    return backoff(attempt, initial=0.2, maximum=RETRY_MAX_DELAY)


@dataclass
class _Consumer:
    """One `on_event` registration, with its metric series looked up once, not per event."""

    event_type: str
    name: str
    handler: EventHandler
    latency: Histogram
    outcomes: dict[str, Counter]
    redeliveries: Counter

    @property
    def subject(self) -> str:
        return event_subject(self.event_type)

    @property
    def durable(self) -> str:
        return f"{self.name}-{self.event_type}".replace(".", "-")


@dataclass
class _ServerConnection:
    """The bus's own connection to a real NATS server, which it publishes, consumes and
    answers through (none under FastStream's in-memory test broker)."""

    connection: NatsClient
    js: JetStreamContext
    consumers: list[PullConsumer] = field(default_factory=list)


class Bus:
    def __init__(
        self, url: str, service: str, *, max_deliveries: int = DEFAULT_MAX_DELIVERIES
    ) -> None:
        self.service = service
        self.max_deliveries = max_deliveries
        self.broker = make_broker(url)
        replicas = stream_replicas(url)
        self._events = JStream(
            EVENTS_STREAM,
            subjects=[EVENTS_PREFIX + ">"],
            max_age=7 * 86400,
            num_replicas=replicas,
        )
        self._deadletters = JStream(
            DEADLETTER_STREAM,
            subjects=[DEADLETTER_PREFIX + ">"],
            max_age=30 * 86400,
            num_replicas=replicas,
        )
        self._consumers: list[_Consumer] = []
        self._responders: list[tuple[str, RequestHandler]] = []
        self._server: _ServerConnection | None = None

    # --- lifetime ---------------------------------------------------------------------

    async def start(self) -> None:
        connection = await self.broker.connect()
        if not isinstance(connection, NatsClient):
            # Under TestNatsBroker: FastStream's in-memory broker delivers to the
            # subscribers `on_event` and `on_request` declared on it.
            await self.broker.start()
            return
        server = _ServerConnection(connection, connection.jetstream())
        self._server = server
        await declare_stream(server.js, self._events.config, EVENTS_PREFIX + ">")
        await declare_stream(server.js, self._deadletters.config, DEADLETTER_PREFIX + ">")
        for consumer in self._consumers:
            await ensure_durable(server.js, EVENTS_STREAM, consumer.durable, consumer.subject)
            pull = PullConsumer(
                connection,
                EVENTS_STREAM,
                consumer.durable,
                functools.partial(self._receive, consumer),
                capacity=IN_FLIGHT,
            )
            await pull.start()
            server.consumers.append(pull)
        for subject, handler in self._responders:
            respond = self._responder(subject, handler)
            await connection.subscribe(subject, queue=f"{self.service}-rpc", cb=respond)
        # Subscriptions are live on the server once start() returns: no request sent
        # right after finds "no responders".
        await connection.flush()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            for pull in server.consumers:
                await pull.stop()
        await self.broker.stop()  # drains the connection: replies in flight still go out

    async def ping(self) -> bool:
        return await self.broker.ping(timeout=1.0)

    # --- publishing -------------------------------------------------------------------

    async def publish_event(
        self,
        event: Envelope,
        timeout: float = PUBLISH_TIMEOUT,  # noqa: ASYNC109
    ) -> None:
        """Publish `event` and wait for the broker to store it. Publishing the same
        event again within two minutes stores nothing (JetStream's `Nats-Msg-Id`)."""
        subject, headers = event_subject(event.type), _event_headers(event)
        await self._publish(subject, event.model_dump_json(), headers, EVENTS_STREAM, timeout)

    async def publish_events(
        self,
        events: Sequence[Envelope],
        timeout: float = PUBLISH_TIMEOUT,  # noqa: ASYNC109
    ) -> None:
        """Publish `events` in order without waiting for each acknowledgement before
        sending the next: one round trip for the lot instead of one per event.

        Returns once every one is stored; otherwise raises `PublishIncomplete`, which
        says how many leading events are known to be stored (the outbox relay marks
        those). The others may be stored too: publishing them again stores no copy.
        """
        if self._server is None or len(events) < 2:
            await self._publish_one_by_one(events, timeout)
            return
        js = self._server.js
        pending: list[asyncio.Future[Any]] = []
        try:
            # Sent in order by awaiting each send; only the acknowledgements overlap.
            for event in events:
                pending.append(
                    await js.publish_async(
                        event_subject(event.type),
                        event.model_dump_json().encode(),
                        stream=EVENTS_STREAM,
                        headers=_event_headers(event),
                    )
                )
            async with asyncio.timeout(timeout):
                await asyncio.wait(pending)
        except Exception as exc:
            raise PublishIncomplete(_leading_successes(pending)) from exc
        finally:
            for future in pending:
                future.cancel()  # an acknowledgement that never came frees its slot
        acknowledged = _leading_successes(pending)
        if acknowledged < len(events):
            raise PublishIncomplete(acknowledged) from pending[acknowledged].exception()

    async def _publish_one_by_one(self, events: Sequence[Envelope], timeout: float) -> None:  # noqa: ASYNC109
        for done, event in enumerate(events):
            try:
                await self.publish_event(event, timeout)
            except Exception as exc:
                raise PublishIncomplete(done) from exc

    async def _publish(
        self,
        subject: str,
        body: str | bytes,
        headers: dict[str, str],
        stream: str,
        timeout: float = PUBLISH_TIMEOUT,  # noqa: ASYNC109
    ) -> None:
        if self._server is not None:
            payload = body.encode() if isinstance(body, str) else body
            await self._server.js.publish(
                subject, payload, timeout=timeout, stream=stream, headers=headers
            )
        else:  # the in-memory broker hands text to its handlers as text, bytes as bytes
            await self.broker.publish(
                body, subject, headers=headers, stream=stream, timeout=timeout
            )

    # --- consuming --------------------------------------------------------------------

    def on_event(self, event_type: str, consumer: str, handler: EventHandler) -> None:
        """Deliver every `event_type` event to `handler`, at least once, across restarts.

        `consumer` names the durable subscription: replicas of one service share it, so
        each event is handled by one of them. Up to `IN_FLIGHT` events are handled at
        once, so handlers must not rely on delivery order (events carry versions).
        Call it before `start()`.
        """
        subject = event_subject(event_type)
        registration = _Consumer(
            event_type,
            consumer,
            handler,
            latency=metrics.message_latency.labels(self.service, subject),
            outcomes={
                outcome: metrics.messages_handled.labels(self.service, subject, outcome)
                for outcome in ("ok", "retry", "dead_letter")
            },
            redeliveries=metrics.message_redeliveries.labels(self.service, subject),
        )
        self._consumers.append(registration)

        async def receive_in_memory(msg: NatsMessage) -> None:
            await self._receive(registration, msg.raw_message)

        self.broker.subscriber(
            subject,
            stream=self._events,
            durable=registration.durable,
            pull_sub=PullSub(batch_size=IN_FLIGHT),
            ack_policy=AckPolicy.MANUAL,
            # The body stays bytes: FastStream's own JSON decoding would raise on some
            # bodies (nested too deep, or not what their content-type says) before any
            # handler runs, and the message would come back forever.
            decoder=_raw_body,
        )(receive_in_memory)

    async def _receive(self, consumer: _Consumer, msg: Msg) -> None:
        started = time.perf_counter()
        if _delivery_count(msg) > 1:
            consumer.redeliveries.inc()
        try:
            outcome = await self._settle(consumer, msg)
        except Exception as exc:  # the dead letter could not be published (broker)
            log.warning("event not settled", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):  # unacknowledged, it comes back anyway
                await msg.nak(delay=5.0)
            outcome = "retry"
        consumer.latency.observe(time.perf_counter() - started)
        consumer.outcomes[outcome].inc()

    async def _settle(self, consumer: _Consumer, msg: Msg) -> str:
        try:
            event = Envelope.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._dead_letter(msg, consumer, f"unparseable event: {exc}")
            return "dead_letter"
        try:
            await consumer.handler(event)
        except (PermanentError, ValidationError) as exc:  # bad data stays bad: no retry
            await self._dead_letter(msg, consumer, f"{type(exc).__name__}: {exc}")
            return "dead_letter"
        except Exception as exc:
            attempt = _delivery_count(msg)
            if attempt >= self.max_deliveries:
                await self._dead_letter(msg, consumer, f"{type(exc).__name__}: {exc}")
                return "dead_letter"
            log.warning("event handler failed", event_id=event.id, attempt=attempt, error=str(exc))
            await msg.nak(delay=retry_delay(attempt))
            return "retry"
        await msg.ack()
        return "ok"

    async def _dead_letter(self, msg: Msg, consumer: _Consumer, error: str) -> None:
        log.error(
            "event dead-lettered",
            consumer=consumer.name,
            event_type=consumer.event_type,
            error=error,
        )
        body = msg.data
        headers = {DEADLETTER_ERROR_HEADER: error[:1000], DEADLETTER_CONSUMER_HEADER: consumer.name}
        if len(body) > DEADLETTER_MAX_BODY:
            # With its headers it might not fit the broker's payload limit any more.
            body, headers["x-truncated-from"] = body[:DEADLETTER_MAX_BODY], str(len(body))
        subject = deadletter_subject(consumer.name, consumer.event_type)
        await self._publish(subject, body, headers, DEADLETTER_STREAM)
        await msg.ack()

    # --- request/reply ----------------------------------------------------------------

    def on_request(self, subject: str, handler: RequestHandler) -> None:
        """Answer requests on `subject` (one replica answers each); errors become replies.
        Call it before `start()`."""
        self._responders.append((subject, handler))

        async def answer_in_memory(msg: NatsMessage) -> dict[str, Any]:
            return await _answer(subject, handler, msg.body)

        self.broker.subscriber(subject, queue=f"{self.service}-rpc")(answer_in_memory)

    def _responder(self, subject: str, handler: RequestHandler) -> Callable[[Msg], Awaitable[None]]:
        async def respond(msg: Msg) -> None:
            reply = json.dumps(await _answer(subject, handler, msg.data)).encode()
            try:
                await msg.respond(reply)
            except Exception as exc:  # the connection went: the caller times out
                log.warning("reply not sent", subject=subject, error=repr(exc))

        return respond

    async def request(
        self,
        subject: str,
        payload: dict[str, Any],
        timeout: float = 2.0,  # noqa: ASYNC109
    ) -> Any:
        body_out = json.dumps(payload).encode()
        deadline = time.monotonic() + timeout
        for attempt in itertools.count():
            try:
                body = await self._request(subject, body_out, timeout)
                break
            except TimeoutError as exc:
                raise RemoteError("timeout", f"no answer on {subject} within {timeout}s") from exc
            except NoRespondersError as exc:
                # Nobody listens right now (a responder restarting, or its subscription
                # not yet known everywhere): try again while the caller's budget lasts.
                pause = backoff(attempt, initial=0.02, maximum=0.5)
                if time.monotonic() + pause >= deadline:
                    raise RemoteError("unavailable", f"no responder on {subject}") from exc
                await asyncio.sleep(pause)
            except Exception as exc:  # connection closed, broker down
                raise RemoteError("unavailable", f"{subject}: {type(exc).__name__}: {exc}") from exc
        answer = json.loads(body)
        if "error" in answer:
            raise RemoteError(answer["error"]["code"], answer["error"]["detail"])
        return answer["ok"]

    async def _request(self, subject: str, body: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        if self._server is not None:
            reply = await self._server.connection.request(subject, body, timeout=timeout)
            return reply.data
        answer = await self.broker.request(body, subject, timeout=timeout)
        return bytes(answer.body)


async def _answer(subject: str, handler: RequestHandler, body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise BadRequest("the request must be a JSON object")
        return {"ok": await handler(payload)}
    except (BadRequest, ValueError, ValidationError) as exc:
        return {"error": {"code": "bad_request", "detail": str(exc)[:500]}}
    except Exception as exc:
        log.exception("request handler failed", subject=subject)
        return {"error": {"code": "internal", "detail": type(exc).__name__}}


def _event_headers(event: Envelope) -> dict[str, str]:
    return {"Nats-Msg-Id": event.id, "ce-type": event.type}


def _leading_successes(futures: Sequence[asyncio.Future[Any]]) -> int:
    count = 0
    for future in futures:
        if not future.done() or future.cancelled() or future.exception() is not None:
            break
        count += 1
    return count


async def _raw_body(msg: StreamMessage[Any]) -> Any:
    return msg.body


def _delivery_count(msg: Msg) -> int:
    try:
        metadata = msg.metadata
    except NotJSMessageError:  # a core NATS message (the in-memory test broker)
        return 1
    sequence = getattr(metadata, "num_delivered", None)
    return int(sequence) if sequence else 1
