"""Trace context through the bus, by OpenTelemetry's messaging conventions.

- An event carries the W3C context of the moment it was written to the outbox, in its
  envelope (`traceparent`, `tracestate`: CloudEvents' distributed-tracing extension), so
  it survives the outbox, a crash and the relay: `traced`, called by `add_to_outbox`.
- The relay publishes each event in a PRODUCER span that continues that context
  (`publication_spans`); its consumers handle it in a CONSUMER span that does too, and
  links to it (`consumer_span`). One checkout is thus one trace, whichever process
  relayed or consumed its events, and however late.
- The relay also sends each event's context as W3C message headers (`trace_headers`).
- Request/reply (the price quote): a CLIENT span around the request (`request_span`),
  whose context travels in the request's headers (`consumers.ask`), and a SERVER span
  around the answer (`responder_span`), its child.

Every helper costs nothing while tracing is off (`telemetry.enabled()`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from bazaar.platform import telemetry
from bazaar.platform.events import Envelope, event_subject

SYSTEM = "bazaar.bus"


def traced(event: Envelope) -> Envelope:
    """`event` with the current trace context, unless it has one (or tracing is off)."""
    if not telemetry.enabled() or event.traceparent:
        return event
    context = telemetry.trace_context()
    return event.model_copy(update=context) if context else event


def trace_headers(events: Sequence[Envelope]) -> list[Mapping[str, str] | None] | None:
    """Each event's trace context as message headers too (`traceparent`, `tracestate`:
    what a broker's own tooling, or a consumer outside Bazaar, looks for); None when none
    of them carries any."""
    if not any(e.traceparent for e in events):
        return None
    return [e.trace_context or None for e in events]


def _attributes(event: Envelope, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": event_subject(event.type),
        "messaging.message.id": event.id,
        "cloudevents.event_type": event.type,
        "cloudevents.event_subject": event.subject,
    }


def publication_spans(events: Sequence[Envelope]) -> AbstractContextManager[None]:
    """A PRODUCER span per traced event around publishing the batch."""
    if not telemetry.enabled():
        return nullcontext()
    return telemetry.spans_each(
        [
            (f"send {event_subject(e.type)}", e.trace_context, _attributes(e, "send"))
            for e in events
            if e.traceparent
        ],
        kind="producer",
    )


def consumer_span(event: Envelope, consumer: str) -> AbstractContextManager[Any]:
    """The CONSUMER span of `consumer` handling `event`: a child of the context the event
    was written in, and linked to it (the messaging conventions' creation context)."""
    if not telemetry.enabled():
        return nullcontext()
    carrier = event.trace_context
    return telemetry.span(
        f"process {event_subject(event.type)}",
        kind="consumer",
        parent=carrier or None,
        links=[carrier] if carrier else (),
        attributes={
            **_attributes(event, "process"),
            "messaging.consumer.group.name": consumer,
        },
    )


def request_span(subject: str) -> AbstractContextManager[Any]:
    """The CLIENT span of a request/reply call on `subject`; inside it,
    `telemetry.trace_context()` is what the request's headers should carry."""
    if not telemetry.enabled():
        return nullcontext()
    return telemetry.span(
        f"send {subject}",
        kind="client",
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": subject,
        },
    )


def responder_span(subject: str, headers: Mapping[str, str] | None) -> AbstractContextManager[Any]:
    """The SERVER span answering a request on `subject`, a child of the caller's span when
    `headers` carry its context."""
    if not telemetry.enabled():
        return nullcontext()
    carrier = {k: v for k, v in (headers or {}).items() if k in telemetry.TRACE_HEADERS}
    return telemetry.span(
        f"process {subject}",
        kind="server",
        parent=carrier or None,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": subject,
        },
    )
