"""The event bus: events out of the outbox, events into consumers, and request/reply.

FastStream is the client layer. Services talk to `Bus`, never to a broker's API, so the
broker is a matter of `BAZAAR_BROKER_URL`. NATS JetStream is the embedded default.

Consumers get at-least-once delivery. A message that cannot be parsed, or whose handler
keeps failing, is moved to a dead-letter subject with its error, and the consumer goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError, NotJSMessageError
from pydantic import ValidationError

from bazaar.platform import metrics
from bazaar.platform.events import (
    DEADLETTER_PREFIX,
    DEADLETTER_STREAM,
    EVENTS_PREFIX,
    EVENTS_STREAM,
    Envelope,
    deadletter_subject,
    event_subject,
)
from bazaar.platform.logs import get_logger

log = get_logger(__name__)

# A dead letter keeps at most this much of the event's body (the broker's default payload
# limit is 1 MiB, headers included).
DEADLETTER_MAX_BODY = 512 * 1024

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


# A handler that fails is retried with exponential backoff, capped: with the default
# deliveries that is about three minutes, longer than a neighbour's restart or a short
# outage (the mail relay down, a database failing over). Only an event that still fails
# then is dead-lettered, to be replayed once the cause is fixed (`bazaar deadletters`).
DEFAULT_MAX_DELIVERIES = 12
RETRY_MAX_DELAY = 30.0


def retry_delay(attempt: int) -> float:
    """Seconds before delivery `attempt + 1` of an event whose handler failed."""
    return min(0.2 * 2 ** min(attempt, 20), RETRY_MAX_DELAY)


class Bus:
    def __init__(
        self, url: str, service: str, *, max_deliveries: int = DEFAULT_MAX_DELIVERIES
    ) -> None:
        self.service = service
        self.max_deliveries = max_deliveries
        self.broker = make_broker(url)
        self._events = JStream(EVENTS_STREAM, subjects=[EVENTS_PREFIX + ">"], max_age=7 * 86400)
        self._deadletters = JStream(
            DEADLETTER_STREAM, subjects=[DEADLETTER_PREFIX + ">"], max_age=30 * 86400
        )
        # Declaring publishers makes the broker create both streams at start-up.
        self.broker.publisher(EVENTS_PREFIX + ">", stream=self._events)
        self.broker.publisher(DEADLETTER_PREFIX + ">", stream=self._deadletters)

    async def start(self) -> None:
        await self.broker.start()
        connection = getattr(self.broker, "_connection", None)
        if isinstance(connection, NatsClient):  # not under TestNatsBroker
            # Subscriptions are live on the server once start() returns: no request sent
            # right after finds "no responders".
            await connection.flush()

    async def stop(self) -> None:
        await self.broker.stop()

    async def ping(self) -> bool:
        return await self.broker.ping(timeout=1.0)

    async def publish_event(self, event: Envelope) -> None:
        await self.broker.publish(
            event.model_dump_json(),
            event_subject(event.type),
            headers={"Nats-Msg-Id": event.id, "ce-type": event.type},
            stream=EVENTS_STREAM,
            timeout=5.0,
        )

    def on_event(self, event_type: str, consumer: str, handler: EventHandler) -> None:
        """Deliver every `event_type` event to `handler`, at least once, across restarts.

        `consumer` names the durable subscription: replicas of one service share it, so
        each event is handled by one of them. Events of a fetched batch are handled
        concurrently, so handlers must not rely on delivery order (events carry versions).
        """
        subject = event_subject(event_type)
        durable = f"{consumer}-{event_type}".replace(".", "-")

        async def receive(msg: NatsMessage) -> None:
            with metrics.message_latency.labels(self.service, subject).time():
                try:
                    outcome = await self._deliver(msg, event_type, consumer, handler)
                except Exception as exc:  # the dead-letter could not be published (broker)
                    log.warning("event not settled", error=f"{type(exc).__name__}: {exc}")
                    await msg.nack(delay=5.0)
                    outcome = "retry"
            metrics.messages_handled.labels(self.service, subject, outcome).inc()

        self.broker.subscriber(
            subject,
            stream=self._events,
            durable=durable,
            pull_sub=PullSub(batch_size=20, timeout=2.0),
            ack_policy=AckPolicy.MANUAL,
            # The body reaches `_deliver` as bytes: FastStream's own JSON decoding would
            # raise on some bodies (nested too deep, or not what their content-type says)
            # before any handler runs, and the message would come back forever.
            decoder=_raw_body,
        )(receive)

    async def _deliver(
        self, msg: NatsMessage, event_type: str, consumer: str, handler: EventHandler
    ) -> str:
        try:
            event = Envelope.model_validate_json(msg.body)
        except ValidationError as exc:
            await self._dead_letter(msg, consumer, event_type, f"unparseable event: {exc}")
            return "dead_letter"
        try:
            await handler(event)
        except (PermanentError, ValidationError) as exc:  # bad data stays bad: no retry
            await self._dead_letter(msg, consumer, event_type, f"{type(exc).__name__}: {exc}")
            return "dead_letter"
        except Exception as exc:
            attempt = _delivery_count(msg)
            if attempt >= self.max_deliveries:
                await self._dead_letter(msg, consumer, event_type, f"{type(exc).__name__}: {exc}")
                return "dead_letter"
            log.warning("event handler failed", event_id=event.id, attempt=attempt, error=str(exc))
            await msg.nack(delay=retry_delay(attempt))
            return "retry"
        await msg.ack()
        return "ok"

    async def _dead_letter(
        self, msg: NatsMessage, consumer: str, event_type: str, error: str
    ) -> None:
        log.error("event dead-lettered", consumer=consumer, event_type=event_type, error=error)
        body, headers = msg.body, {"x-error": error[:1000], "x-consumer": consumer}
        if len(body) > DEADLETTER_MAX_BODY:
            # With its headers it might not fit the broker's payload limit any more.
            body, headers["x-truncated-from"] = body[:DEADLETTER_MAX_BODY], str(len(body))
        subject = deadletter_subject(consumer, event_type)
        await self.broker.publish(body, subject, headers=headers, stream=DEADLETTER_STREAM)
        await msg.ack()

    def on_request(self, subject: str, handler: RequestHandler) -> None:
        """Answer requests on `subject` (one replica answers each); errors become replies."""

        async def answer(msg: NatsMessage) -> dict[str, Any]:
            try:
                payload = json.loads(msg.body)
                if not isinstance(payload, dict):
                    raise BadRequest("the request must be a JSON object")
                return {"ok": await handler(payload)}
            except (BadRequest, ValueError, ValidationError) as exc:
                return {"error": {"code": "bad_request", "detail": str(exc)[:500]}}
            except Exception as exc:
                log.exception("request handler failed", subject=subject)
                return {"error": {"code": "internal", "detail": type(exc).__name__}}

        self.broker.subscriber(subject, queue=f"{self.service}-rpc")(answer)

    async def request(
        self,
        subject: str,
        payload: dict[str, Any],
        timeout: float = 2.0,  # noqa: ASYNC109
    ) -> Any:
        body_out = json.dumps(payload)
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            try:
                reply = await self.broker.request(body_out, subject, timeout=timeout)
                break
            except TimeoutError as exc:
                raise RemoteError("timeout", f"no answer on {subject} within {timeout}s") from exc
            except NoRespondersError as exc:
                # Nobody listens right now (a responder restarting, or its subscription
                # not yet known everywhere): try again while the caller's budget lasts.
                if time.monotonic() + pause >= deadline:
                    raise RemoteError("unavailable", f"no responder on {subject}") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)
            except Exception as exc:  # connection closed, broker down
                raise RemoteError("unavailable", f"{subject}: {type(exc).__name__}: {exc}") from exc
        body = json.loads(reply.body)
        if "error" in body:
            raise RemoteError(body["error"]["code"], body["error"]["detail"])
        return body["ok"]


async def _raw_body(msg: StreamMessage[Any]) -> Any:
    return msg.body


def _delivery_count(msg: NatsMessage) -> int:
    try:
        metadata = msg.raw_message.metadata
    except (AttributeError, NotJSMessageError):  # a core NATS message (the in-memory test broker)
        return 1
    sequence = getattr(metadata, "num_delivered", None)
    return int(sequence) if sequence else 1
