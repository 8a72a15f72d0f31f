"""The metrics issue 12 completes: breaker state, outbox lag, redeliveries, gRPC latency,
and exemplars that only the OpenMetrics exposition shows."""

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import REGISTRY
from sqlalchemy import update

from bazaar.platform import metrics
from bazaar.platform.bus import Bus
from bazaar.platform.clients import ResilientClient, UpstreamError
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, new_event
from bazaar.platform.grpc import create_grpc_server, mark_serving
from bazaar.platform.messaging_tables import metadata, outbox
from bazaar.platform.outbox import OutboxRelay, add_to_outbox
from bazaar.platform.web import create_app
from bazaar.testing import NatsServer, free_port

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0x00F067AA0BA902B7


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def a_sampled_span() -> NonRecordingSpan:
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    return NonRecordingSpan(context)


# --- breaker state --------------------------------------------------------------------


async def test_the_breaker_state_is_closed_open_then_half_open_then_closed() -> None:
    answers = iter([503, 503, 200])

    def processor(_: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers))

    ttl = 0.2
    client = ResilientClient(
        "caller",
        "breaker-state",
        "http://neighbour",
        attempts=1,
        breaker_threshold=2,
        breaker_ttl=ttl,
        transport=httpx.MockTransport(processor),
    )
    state = {"service": "caller", "target": "breaker-state"}
    assert sample("bazaar_circuit_breaker_state", **state) == metrics.BREAKER_CLOSED
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await client.request("GET", "/")
    assert sample("bazaar_circuit_breaker_state", **state) == metrics.BREAKER_OPEN
    await asyncio.sleep(ttl * 1.5)  # the TTL has passed: the next call would be let through
    assert sample("bazaar_circuit_breaker_state", **state) == metrics.BREAKER_HALF_OPEN
    assert (await client.request("GET", "/")).status_code == 200
    assert sample("bazaar_circuit_breaker_state", **state) == metrics.BREAKER_CLOSED
    await client.aclose()


# --- outbox lag -----------------------------------------------------------------------


async def test_outbox_lag_is_the_age_of_the_oldest_unpublished_row(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'lag.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    async with db.transaction() as session:
        await add_to_outbox(session, *(new_event("order.paid", "test", {}) for _ in range(3)))
    async with db.transaction() as session:  # written a minute ago
        written = datetime.now(UTC) - timedelta(seconds=60)
        await session.execute(update(outbox).values(created_at=written))
    bus = Bus("nats://127.0.0.1:1", "lag")
    published: list[Envelope] = []

    async def broker_down(events: Sequence[Envelope], *_: object, **__: object) -> None:
        raise ConnectionError("no broker")

    async def broker_up(events: Sequence[Envelope], *_: object, **__: object) -> None:
        published.extend(events)  # (the relay passes the events' trace headers too)

    relay = OutboxRelay(db, bus, "lag-test")
    bus.publish_events = broker_down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    lag = sample("bazaar_outbox_lag_seconds", service="lag-test")
    assert lag is not None and 60 <= lag < 90
    bus.publish_events = broker_up  # type: ignore[method-assign]
    assert await relay.publish_pending() == 3
    assert await relay.publish_pending() == 0  # nothing left: no lag
    assert sample("bazaar_outbox_lag_seconds", service="lag-test") == 0
    await db.dispose()


# --- consumers ------------------------------------------------------------------------


async def test_a_redelivered_event_is_counted(nats: NatsServer) -> None:
    producer, consumer = Bus(nats.url, "redelivery-producer"), Bus(nats.url, "redelivery")
    attempts: list[str] = []

    async def fails_once(event: Envelope) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("not this time")

    consumer.on_event("stock.changed", "redelivery", fails_once)
    await producer.start()
    await consumer.start()
    await producer.publish_event(new_event("stock.changed", "test", {}))
    labels = {"service": "redelivery", "subject": "bazaar.events.stock.changed"}
    deadline = time.monotonic() + 10
    while sample("bazaar_messages_total", **labels, outcome="ok") != 1:
        assert time.monotonic() < deadline, f"handled {len(attempts)} times"
        await asyncio.sleep(0.05)
    assert sample("bazaar_message_redeliveries_total", **labels) == 1
    assert sample("bazaar_messages_total", **labels, outcome="retry") == 1
    await consumer.stop()
    await producer.stop()


# --- gRPC -----------------------------------------------------------------------------


async def test_grpc_calls_are_timed_per_method() -> None:
    server, health = create_grpc_server("grpc-latency", [])
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    await mark_serving(health, [])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(3):
            await stub.Check(health_pb2.HealthCheckRequest(service=""))
    await server.stop(None)
    timed = sample("bazaar_grpc_request_seconds_count", service="grpc-latency", method="Check")
    assert timed == 3


# --- exposition and exemplars ---------------------------------------------------------


async def test_metrics_are_plain_text_unless_openmetrics_is_asked_for() -> None:
    app = create_app("exposition")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        await http.get("/healthz")
        plain = await http.get("/metrics")
        open_metrics = await http.get(
            "/metrics", headers={"accept": "application/openmetrics-text;version=1.0.0"}
        )
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'bazaar_http_requests_total{method="GET",route="/healthz"' in plain.text
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")


def test_a_latency_observed_in_a_sampled_span_carries_its_trace_id() -> None:
    latency = metrics.http_latency.labels("exemplars", "POST", "/api/checkout")
    with trace.use_span(a_sampled_span()):
        metrics.observe(latency, 0.042)
    open_metrics, _ = metrics.render("application/openmetrics-text; version=1.0.0")
    plain, _ = metrics.render(None)
    line = next(
        line
        for line in open_metrics.decode().splitlines()
        if line.startswith('bazaar_http_request_seconds_bucket{le="0.05",method="POST"')
        and 'service="exemplars"' in line
    )
    assert f'# {{span_id="{SPAN_ID:016x}",trace_id="{TRACE_ID:032x}"}} 0.042' in line
    assert f"{TRACE_ID:032x}" not in plain.decode()  # the plain format has no exemplars


def test_no_exemplar_outside_a_sampled_span() -> None:
    assert metrics.trace_exemplar() is None
    unsampled = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(unsampled)):
        assert metrics.trace_exemplar() is None
    with trace.use_span(a_sampled_span()):
        assert metrics.trace_exemplar() == {
            "trace_id": f"{TRACE_ID:032x}",
            "span_id": f"{SPAN_ID:016x}",
        }
