"""The event bus: events out of the outbox, events into consumers, and request/reply.

Services talk to `Bus`, never to a broker's API. The broker is chosen once, from the
URL's scheme (`brokers.make_transport`): NATS JetStream, RabbitMQ, or the in-memory broker
of tests. A transport only moves bytes and headers; the rules are here, once, for every
broker: the envelope is parsed, an event no retry can fix is dead-lettered at once, a
failing handler is retried with backoff up to `max_deliveries`, then dead-lettered with
its error, and every outcome is counted.

Consumers get at-least-once delivery. A message that cannot be parsed, or whose handler
keeps failing, is moved to a dead-letter subject with its error, and the consumer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from bazaar.platform import metrics
from bazaar.platform.backoff import backoff
from bazaar.platform.brokers import (
    Delivery,
    NoResponders,
    Outgoing,
    PublishIncomplete,
    Subscription,
    Transport,
    make_transport,
)
from bazaar.platform.events import (
    DEADLETTER_CONSUMER_HEADER,
    DEADLETTER_ERROR_HEADER,
    Envelope,
    deadletter_subject,
    event_subject,
)
from bazaar.platform.logs import get_logger

__all__ = [
    "DEFAULT_MAX_DELIVERIES",
    "PUBLISH_TIMEOUT",
    "RETRY_MAX_DELAY",
    "BadRequest",
    "Bus",
    "PermanentError",
    "PublishIncomplete",
    "RemoteError",
    "incoming_headers",
    "retry_delay",
]

log = get_logger(__name__)

# A dead letter keeps at most this much of the event's body (NATS' default payload limit
# is 1 MiB, headers included).
DEADLETTER_MAX_BODY = 512 * 1024
PUBLISH_TIMEOUT = 5.0
# A consumer handles up to this many events at once.
IN_FLIGHT = 20

EventHandler = Callable[[Envelope], Awaitable[None]]
RequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Headers = Mapping[str, str]

# The headers of the message being handled (an event, or a request), for the handler.
_incoming: contextvars.ContextVar[Headers | None] = contextvars.ContextVar(
    "bus_headers", default=None
)


def incoming_headers() -> Headers:
    """The headers of the event or request the running handler was given ({} outside one):
    what the producer put there (`publish_event(headers=...)`), e.g. W3C trace context."""
    return _incoming.get() or {}


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


class Bus:
    def __init__(
        self, url: str, service: str, *, max_deliveries: int = DEFAULT_MAX_DELIVERIES
    ) -> None:
        self.service = service
        self.max_deliveries = max_deliveries
        self.transport: Transport = make_transport(url, service)

    # --- lifetime ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.transport.start()

    async def stop(self) -> None:
        await self.transport.stop()

    async def ping(self) -> bool:
        return await self.transport.ping()

    # --- publishing -------------------------------------------------------------------

    async def publish_event(
        self,
        event: Envelope,
        timeout: float = PUBLISH_TIMEOUT,  # noqa: ASYNC109
        *,
        headers: Headers | None = None,
    ) -> None:
        """Publish `event` and wait for the broker to store it. The broker drops a copy
        published again within its duplicate window, where it has one (JetStream: two
        minutes; RabbitMQ: none, consumers' inboxes drop it). `headers` travel with it."""
        await self.transport.publish(_outgoing(event, headers), timeout)

    async def publish_events(
        self,
        events: Sequence[Envelope],
        timeout: float = PUBLISH_TIMEOUT,  # noqa: ASYNC109
        *,
        headers: Sequence[Headers | None] | None = None,
    ) -> None:
        """Publish `events` in order without waiting for each acknowledgement before
        sending the next: one round trip for the lot instead of one per event
        (`headers[i]`, if given, go with `events[i]`).

        Returns once every one is stored; otherwise raises `PublishIncomplete`, which
        says how many leading events are known to be stored (the outbox relay marks
        those). The others may be stored too: publishing them again is harmless.
        """
        each = headers or [None] * len(events)
        messages = [_outgoing(event, extra) for event, extra in zip(events, each, strict=True)]
        await self.transport.publish_many(messages, timeout)

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
        subscription = Subscription(
            subject=subject,
            name=registration.durable,
            capacity=IN_FLIGHT,
            dead_letters=deadletter_subject(consumer, event_type),
        )

        async def receive(delivery: Delivery) -> None:
            await self._receive(registration, delivery)

        self.transport.subscribe(subscription, receive)

    async def _receive(self, consumer: _Consumer, delivery: Delivery) -> None:
        started = time.perf_counter()
        if delivery.attempt > 1:
            consumer.redeliveries.inc()
        token = _incoming.set(delivery.headers)
        try:
            outcome = await self._settle(consumer, delivery)
        except Exception as exc:  # the dead letter could not be published (broker)
            log.warning("event not settled", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):  # unacknowledged, it comes back anyway
                await delivery.retry(5.0)
            outcome = "retry"
        finally:
            _incoming.reset(token)
        consumer.latency.observe(time.perf_counter() - started)
        consumer.outcomes[outcome].inc()

    async def _settle(self, consumer: _Consumer, delivery: Delivery) -> str:
        try:
            event = Envelope.model_validate_json(delivery.body)
        except ValidationError as exc:
            await self._dead_letter(delivery, consumer, f"unparseable event: {exc}")
            return "dead_letter"
        try:
            await consumer.handler(event)
        except (PermanentError, ValidationError) as exc:  # bad data stays bad: no retry
            await self._dead_letter(delivery, consumer, f"{type(exc).__name__}: {exc}")
            return "dead_letter"
        except Exception as exc:
            attempt = delivery.attempt
            if attempt >= self.max_deliveries:
                await self._dead_letter(delivery, consumer, f"{type(exc).__name__}: {exc}")
                return "dead_letter"
            log.warning("event handler failed", event_id=event.id, attempt=attempt, error=str(exc))
            await delivery.retry(retry_delay(attempt))
            return "retry"
        await delivery.ack()
        return "ok"

    async def _dead_letter(self, delivery: Delivery, consumer: _Consumer, error: str) -> None:
        """Publish the event with its error to the dead-letter subject, then ack it: the
        error is kept with it, whichever the broker."""
        log.error(
            "event dead-lettered",
            consumer=consumer.name,
            event_type=consumer.event_type,
            error=error,
        )
        body = delivery.body
        headers = {
            **delivery.headers,
            DEADLETTER_ERROR_HEADER: error[:1000],
            DEADLETTER_CONSUMER_HEADER: consumer.name,
        }
        if len(body) > DEADLETTER_MAX_BODY:
            # With its headers it might not fit the broker's payload limit any more.
            body, headers["x-truncated-from"] = body[:DEADLETTER_MAX_BODY], str(len(body))
        subject = deadletter_subject(consumer.name, consumer.event_type)
        await self.transport.publish_dead_letter(Outgoing(subject, body, _plain(headers)))
        await delivery.ack()

    # --- request/reply ----------------------------------------------------------------

    def on_request(self, subject: str, handler: RequestHandler) -> None:
        """Answer requests on `subject` (one replica answers each); errors become replies.
        Call it before `start()`."""

        async def answer(body: bytes, headers: Headers) -> bytes:
            token = _incoming.set(headers)
            try:
                return json.dumps(await _answer(subject, handler, body)).encode()
            finally:
                _incoming.reset(token)

        self.transport.respond(subject, f"{self.service}-rpc", answer)

    async def request(
        self,
        subject: str,
        payload: dict[str, Any],
        timeout: float = 2.0,  # noqa: ASYNC109
        *,
        headers: Headers | None = None,
    ) -> Any:
        body_out = json.dumps(payload).encode()
        deadline = time.monotonic() + timeout
        for attempt in itertools.count():
            try:
                body = await self.transport.request(subject, body_out, headers or {}, timeout)
                break
            except TimeoutError as exc:
                raise RemoteError("timeout", f"no answer on {subject} within {timeout}s") from exc
            except NoResponders as exc:
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


def _outgoing(event: Envelope, headers: Headers | None) -> Outgoing:
    return Outgoing(
        event_subject(event.type),
        event.model_dump_json().encode(),
        {**(headers or {}), "ce-type": event.type},
        message_id=event.id,
    )


# Headers a broker sets on delivery, not carried over to a dead letter: the dead letter is
# a new message (NATS refuses a second `Nats-Msg-Id` within its window; RabbitMQ counts
# deliveries of the dead-letter queue itself).
_DELIVERY_HEADERS = {"Nats-Msg-Id", "x-delivery-count", "x-death", "x-first-death-reason"}


def _plain(headers: Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in _DELIVERY_HEADERS}
