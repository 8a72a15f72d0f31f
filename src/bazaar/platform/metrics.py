"""Prometheus metrics every service shares: RED per endpoint and per consumer, saga steps,
outbox lag and breaker state. One registry per process (prometheus-client's default)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

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
messages_handled = Counter(
    "bazaar_messages_total", "Bus messages consumed", ["service", "subject", "outcome"]
)
message_latency = Histogram(
    "bazaar_message_seconds",
    "Bus message handling time",
    ["service", "subject"],
    buckets=LATENCY_BUCKETS,
)
outbox_pending = Gauge("bazaar_outbox_pending", "Outbox rows not yet published", ["service"])
outbox_published = Counter("bazaar_outbox_published_total", "Outbox rows published", ["service"])
saga_steps = Counter("bazaar_saga_steps_total", "Saga steps taken", ["step", "outcome"])
breaker_state = Gauge(
    "bazaar_circuit_breaker_open", "1 while a circuit breaker is open", ["service", "target"]
)
grpc_requests = Counter(
    "bazaar_grpc_requests_total", "gRPC calls handled", ["service", "method", "code"]
)


def render_latest() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
