"""Prometheus metrics every service shares: RED per endpoint, consumer and gRPC method, saga
steps, outbox lag and breaker state. One registry per process (prometheus-client's default).

Latency histograms carry the trace id of the span that was active as an exemplar; only the
OpenMetrics exposition shows exemplars, so /metrics answers it to a scraper that asks for it
(Prometheus does) and the plain text format to everyone else."""

from __future__ import annotations

from opentelemetry import trace
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

http_requests = Counter(
    "bazaar_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
http_latency = Histogram(
    "bazaar_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
# outcome: ok, retry (the handler failed; delivered again later), dead_letter.
messages_handled = Counter(
    "bazaar_messages_total", "Bus messages consumed", ["service", "subject", "outcome"]
)
message_latency = Histogram(
    "bazaar_message_seconds",
    "Bus message handling time",
    ["service", "subject"],
    buckets=LATENCY_BUCKETS,
)
message_redeliveries = Counter(
    "bazaar_message_redeliveries_total",
    "Bus messages delivered more than once (a failed or interrupted earlier delivery)",
    ["service", "subject"],
)
outbox_lag = Gauge(
    "bazaar_outbox_lag_seconds",
    "Age of the oldest unpublished outbox row at the relay's last pass (0: none)",
    ["service"],
)
outbox_pending = Gauge("bazaar_outbox_pending", "Outbox rows not yet published", ["service"])
outbox_published = Counter("bazaar_outbox_published_total", "Outbox rows published", ["service"])
saga_steps = Counter("bazaar_saga_steps_total", "Saga steps taken", ["step", "outcome"])
saga_step_latency = Histogram(
    "bazaar_saga_step_seconds",
    "Time to perform one saga step (the call to the neighbour), by outcome",
    ["step", "outcome"],
    buckets=LATENCY_BUCKETS,
)
saga_oldest_pending = Gauge(
    "bazaar_saga_oldest_pending_seconds", "Age of the oldest order still pending (0: none)"
)
saga_deadline = Gauge(
    "bazaar_saga_deadline_seconds",
    "How long an order may wait for payment before it is cancelled, refund grace included",
)
# What the breaker does with the next call: 0 closed (sends it), 1 half-open (sends it as
# a probe), 2 open (refuses it).
BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN = 0, 1, 2
breaker_state = Gauge(
    "bazaar_circuit_breaker_state",
    "Circuit breaker per neighbour: 0 closed, 1 half-open, 2 open",
    ["service", "target"],
)
grpc_requests = Counter(
    "bazaar_grpc_requests_total", "gRPC calls handled", ["service", "method", "code"]
)
grpc_latency = Histogram(
    "bazaar_grpc_request_seconds",
    "gRPC call handling time",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)


def trace_exemplar() -> dict[str, str] | None:
    """The active span's trace and span id, when it is sampled (else no exemplar: an id
    that leads to no stored trace would only mislead)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


def observe(histogram: Histogram, seconds: float) -> None:
    """Observe with the active trace as the exemplar."""
    histogram.observe(seconds, trace_exemplar())


def render(accept: str | None) -> tuple[bytes, str]:
    """The registry in the format the `Accept` header asks for: OpenMetrics (with
    exemplars) when named, else Prometheus's plain text."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type
