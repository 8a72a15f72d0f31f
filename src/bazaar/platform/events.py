"""The event envelope (CloudEvents 1.0 shape) and the subjects events travel on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

EVENTS_STREAM = "BAZAAR_EVENTS"
EVENTS_PREFIX = "bazaar.events."
DEADLETTER_STREAM = "BAZAAR_DEADLETTER"
DEADLETTER_PREFIX = "bazaar.deadletter."
# A dead letter's headers: why it could not be handled, and by which consumer.
DEADLETTER_ERROR_HEADER = "x-error"
DEADLETTER_CONSUMER_HEADER = "x-consumer"


def _trace_header(value: object) -> str | None:
    """A W3C header as received, or None: trace context that is not even a short string
    is dropped, never a reason to refuse the event it came with."""
    return value if isinstance(value, str) and 0 < len(value) <= TRACE_HEADER_MAX else None


TRACE_HEADER_MAX = 512
# Absent (None) it is not written at all: an event of a process that does not trace looks
# as it always did.
TraceHeader = Annotated[
    str | None,
    BeforeValidator(_trace_header),
    Field(default=None, exclude_if=lambda value: value is None),
]


def event_subject(event_type: str) -> str:
    """`order.paid` travels on `bazaar.events.order.paid`."""
    return EVENTS_PREFIX + event_type


def deadletter_subject(consumer: str, event_type: str) -> str:
    return f"{DEADLETTER_PREFIX}{consumer}.{event_type}"


class Envelope(BaseModel):
    """A CloudEvents-shaped event: what every service publishes and consumes."""

    # Unknown envelope fields are ignored: a producer may add some before its consumers know them.
    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: str = "1.0"
    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)+$")
    source: str = Field(min_length=1, max_length=200)
    subject: str = Field(default="", max_length=200, description="The aggregate's id.")
    time: datetime
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    # CloudEvents' distributed-tracing extension: the W3C trace context of the moment the
    # event was written to the outbox (see `outbox.add_to_outbox`), which its consumers
    # continue (see `consumers.consume`).
    traceparent: TraceHeader = None
    tracestate: TraceHeader = None

    @property
    def trace_context(self) -> dict[str, str]:
        """The W3C headers the event carries (none if its producer did not trace)."""
        return {
            name: value
            for name, value in (("traceparent", self.traceparent), ("tracestate", self.tracestate))
            if value
        }


def new_event(event_type: str, source: str, data: dict[str, Any], subject: str = "") -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=event_type,
        source=f"/bazaar/{source}",
        subject=subject,
        time=datetime.now(UTC),
        data=data,
    )
