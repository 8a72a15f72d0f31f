"""Tracing: which `OTEL_*` variables turn it on; off, nothing is instrumented and nothing
is added to events; on, a request is a server span whose ids are on its log lines, an
event keeps the context of its outbox write, and its consumer continues that trace."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform import telemetry
from bazaar.platform.bus import Bus
from bazaar.platform.consumers import answer, ask, consume
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, new_event
from bazaar.platform.logs import configure_logging, get_logger
from bazaar.platform.messaging_tables import metadata as messaging
from bazaar.platform.messaging_tables import outbox
from bazaar.platform.outbox import OutboxRelay, add_to_outbox
from bazaar.platform.web import create_app
from bazaar.testing.interpreter import fresh_interpreter

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),  # no exporter, no endpoint: nothing to send traces to
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h:4318/v1/traces"}, True),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "TRUE "}, False),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_the_standard_variables_decide_whether_a_process_traces(
    environ: dict[str, str], on: bool
) -> None:
    assert telemetry.wanted(environ) is on


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
    ],
)
def test_a_value_this_platform_cannot_honour_stops_start_up_naming_it(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(telemetry.TracingConfigurationError, match=named):
        telemetry.start_tracing("shop", environ)
    assert not telemetry.enabled()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert telemetry.start_tracing("shop", {"BAZAAR_TRACE_SQL": "true"}, exporter=exporter)
    yield exporter
    telemetry.stop_tracing()


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in finished if s.name == name]
    assert found, f"no span {name!r} in {[s.name for s in finished]}"
    return found[0]


# --- off ------------------------------------------------------------------------------


def test_off_no_instrumentation_is_installed_and_spans_cost_nothing() -> None:
    assert not telemetry.enabled()
    app = create_app("shop")
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert telemetry.grpc_server_interceptors() == []
    assert telemetry.aiohttp_trace_configs() == []
    assert telemetry.trace_context() == {}
    with telemetry.span("nothing") as current:
        assert current is None


async def test_off_an_event_is_written_as_it_always_was(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    async with db.transaction() as session:
        await add_to_outbox(session, new_event("order.paid", "shop", {"order_id": "o-1"}))
    envelope = await _only_outbox_envelope(db)
    assert "traceparent" not in envelope and "tracestate" not in envelope
    await db.dispose()


# --- on -------------------------------------------------------------------------------


async def test_a_request_is_a_server_span_and_its_log_lines_carry_its_ids(
    spans: InMemorySpanExporter,
) -> None:
    lines = io.StringIO()
    configure_logging("shop")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(lines))
    app = create_app("shop")

    @app.get("/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        get_logger("test").info("looking at a thing", thing=thing)
        return {"thing": thing}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        assert (await client.get("/things/lamp")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200  # never traced

    server = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in server] == ["GET /things/{thing}"]
    assert server[0].resource.attributes["service.name"] == "shop"
    logged = json.loads(next(line for line in lines.getvalue().splitlines() if "thing" in line))
    assert logged["trace_id"] == format(server[0].context.trace_id, "032x")
    assert logged["span_id"] == format(server[0].context.span_id, "016x")


class Paid(BaseModel):
    order_id: str


class FakeBus:
    """What consume() and the relay need of a bus: registrations, and a publish that
    hands each event to the registered handlers at once."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Envelope], Awaitable[None]]] = {}
        self.published: list[Envelope] = []
        self.headers: list[dict[str, str] | None] | None = None

    def on_event(self, event_type: str, consumer: str, handler: Any) -> None:
        self.handlers[event_type] = handler

    async def publish_events(
        self, events: list[Envelope], headers: list[dict[str, str] | None] | None = None
    ) -> None:
        self.headers = headers
        for event in events:
            self.published.append(event)
            await self.handlers[event.type](event)


async def test_an_event_continues_the_trace_it_was_written_in(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    db, bus = await _database(tmp_path), FakeBus()
    handled: list[str] = []

    async def mail(session: AsyncSession, payload: Paid, event: Envelope) -> None:
        handled.append(telemetry.trace_context()["traceparent"])

    consume(bus, db, "order.paid", consumer="mailer", contract=Paid, handler=mail)  # type: ignore[arg-type]
    with telemetry.span("checkout") as checkout:
        assert checkout is not None
        async with db.transaction() as session:
            await add_to_outbox(session, new_event("order.paid", "shop", {"order_id": "o-1"}))
    written = await _only_outbox_envelope(db)
    assert written["traceparent"].split("-")[1] == format(checkout.context.trace_id, "032x")

    relay = OutboxRelay(db, bus, "shop")  # type: ignore[arg-type]
    assert await relay.publish_pending() == 1
    assert handled, "the consumer never ran"
    assert bus.headers == [{"traceparent": written["traceparent"]}]  # W3C headers too

    finished = spans.get_finished_spans()
    trace_id = checkout.context.trace_id
    send = by_name(finished, "send bazaar.events.order.paid")
    process = by_name(finished, "process bazaar.events.order.paid")
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert send.context.trace_id == process.context.trace_id == trace_id
    assert process.parent is not None and process.parent.span_id == checkout.context.span_id
    assert [link.context.span_id for link in process.links] == [checkout.context.span_id]
    assert process.attributes["messaging.consumer.group.name"] == "mailer"
    # The handler's statements are spans of the consumer's trace too.
    assert any(s.kind is SpanKind.CLIENT and s.context.trace_id == trace_id for s in finished)
    await db.dispose()


async def test_a_consumer_that_fails_marks_its_span(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    db, bus = await _database(tmp_path), FakeBus()

    async def broken(session: AsyncSession, payload: Paid, event: Envelope) -> None:
        raise RuntimeError("mail relay down")

    consume(bus, db, "order.paid", consumer="mailer", contract=Paid, handler=broken)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await bus.publish_events([new_event("order.paid", "shop", {"order_id": "o-2"})])
    process = by_name(spans.get_finished_spans(), "process bazaar.events.order.paid")
    assert process.status.status_code is StatusCode.ERROR
    assert process.parent is None  # an event written without trace context starts one
    await db.dispose()


def test_trace_context_that_is_no_short_string_is_dropped_not_refused() -> None:
    event = new_event("order.paid", "shop", {"order_id": "o-3"})
    odd = {**event.model_dump(mode="json"), "traceparent": 42, "tracestate": "x" * 5000}
    parsed = Envelope.model_validate(odd)
    assert parsed.traceparent is None and parsed.tracestate is None
    assert parsed.trace_context == {}


@pytest.mark.parametrize("asked", [False, True])
async def test_statements_are_spans_only_when_asked_for(asked: bool, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    environ = {"BAZAAR_TRACE_SQL": "true"} if asked else {}
    assert telemetry.start_tracing("shop", environ, exporter=exporter)
    try:
        db = await _database(tmp_path)
        with telemetry.span("checkout"):
            async with db.transaction() as session:
                await add_to_outbox(session, new_event("order.paid", "shop", {"order_id": "o"}))
        await db.dispose()
    finally:
        telemetry.stop_tracing()
    kinds = [s.kind for s in exporter.get_finished_spans()]
    assert (SpanKind.CLIENT in kinds) is asked, kinds
    assert SpanKind.INTERNAL in kinds  # the checkout's own span either way


async def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}")
    async with db.engine.begin() as connection:
        await connection.run_sync(messaging.create_all)
    return db


async def _only_outbox_envelope(db: Database) -> dict[str, Any]:
    async with db.reading() as session:
        rows = (await session.execute(select(outbox.c.envelope))).scalars().all()
    assert len(rows) == 1
    envelope: dict[str, Any] = rows[0]
    return envelope


class Prices(BaseModel):
    product_ids: list[str]


class Priced(BaseModel):
    total: int


async def test_a_request_and_its_answer_are_one_trace(spans: InMemorySpanExporter) -> None:
    bus = Bus(f"memory://telemetry-{uuid.uuid4().hex}", "shop")

    async def price(request: Prices) -> Priced:
        return Priced(total=100 * len(request.product_ids))

    answer(bus, "bazaar.rpc.test.price", contract=Prices, responder=price)
    await bus.start()
    try:
        with telemetry.span("checkout") as checkout:
            assert checkout is not None
            reply = await ask(bus, "bazaar.rpc.test.price", Prices(product_ids=["a"]), timeout=2)
    finally:
        await bus.stop()
    assert reply == {"total": 100}
    finished = spans.get_finished_spans()
    sent = by_name(finished, "send bazaar.rpc.test.price")
    answered = by_name(finished, "process bazaar.rpc.test.price")
    assert sent.kind is SpanKind.CLIENT and answered.kind is SpanKind.SERVER
    assert sent.parent is not None and sent.parent.span_id == checkout.context.span_id
    assert answered.parent is not None and answered.parent.span_id == sent.context.span_id
    assert answered.context.trace_id == checkout.context.trace_id


def test_off_a_service_process_loads_neither_the_sdk_nor_an_instrumentation() -> None:
    """What a service does at start-up with tracing off, in a fresh interpreter."""
    loaded = fresh_interpreter(
        """
        import sys
        from bazaar.platform.telemetry import start_tracing
        from bazaar.platform.web import create_app
        from bazaar.platform.db import Database
        from bazaar.platform.grpc import create_channel
        assert not start_tracing("shop", {"OTEL_SDK_DISABLED": "true"})
        create_app("shop"); Database("sqlite+aiosqlite:///:memory:")
        create_channel("127.0.0.1:1")
        prefixes = ("opentelemetry.sdk", "opentelemetry.instrumentation", "opentelemetry.exporter")
        print([m for m in sys.modules if m.startswith(prefixes)])
        """
    )
    assert loaded == "[]"
