"""Tracing: OpenTelemetry, configured by the standard `OTEL_*` variables, started once per
service process (`start_tracing`, called by the shared CLI just before it serves).

What turns it on: an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `bazaar up` points every process at its local trace
store unless one is given) or `OTEL_TRACES_EXPORTER=console`. What turns it off:
`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`, or no exporter at all. Off, nothing
of OpenTelemetry is even imported: every helper here is one test of a module global, the
app factories install no instrumentation, and log lines carry no trace ids.

Also read, by the SDK itself: `OTEL_SERVICE_NAME` (default: the service's name),
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` (default: parent-based, always
on), `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` (`http/protobuf`, the default, or `grpc`),
`OTEL_EXPORTER_OTLP_(TRACES_)HEADERS|TIMEOUT|COMPRESSION` and `OTEL_BSP_*`. Over HTTP
the official exporter sends through httpx (`otlp_http`), which every process has loaded
already, rather than requests.

`BAZAAR_TRACE_SQL=true` adds a span for every SQL statement. Off by default: they were
more than half of a checkout's spans and about a third of what tracing cost it in CPU
(`make bench`: 1.59 times the CPU of tracing off with them, 1.36 without); the requests',
calls' and messages' spans already say where the time went, and a slow statement shows
as the gap inside its handler's span.

On, the platform's factories call the official instrumentations where they build things:
`web.create_app` (FastAPI/ASGI), `flaskapp.create_flask_app` (Flask/WSGI), `grpc` (the
grpc.aio server interceptor and the client's), `transport.ServiceTransport` (aiohttp
client), `db` and `flaskapp.SyncDatabase` (SQLAlchemy). Messages carry W3C trace context
in their envelope (`trace_context`, `span`): see `outbox`, `consumers` and `bus_context`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import aiohttp
    from fastapi import FastAPI
    from flask import Flask
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from sqlalchemy import Engine

SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
# The W3C Trace Context headers; CloudEvents' distributed-tracing extension names its
# attributes the same, so an envelope carries them as they are.
TRACE_HEADERS = ("traceparent", "tracestate")
# Never traced: probes and scrapes would bury the requests that matter.
UNTRACED_URLS = "/healthz,/readyz,/metrics"
PROTOCOLS = ("http/protobuf", "grpc")
SQL_SPANS_VARIABLE = "BAZAAR_TRACE_SQL"


class TracingConfigurationError(SystemExit):
    """An `OTEL_*` value this platform cannot honour; names the variable."""


@dataclass(frozen=True)
class _Tracing:
    service: str
    provider: TracerProvider
    tracer: Tracer
    propagator: TraceContextTextMapPropagator
    sql: bool  # a span per statement (BAZAAR_TRACE_SQL)


_tracing: _Tracing | None = None
_global_provider_set = False


def enabled() -> bool:
    """Whether this process traces (`start_tracing` found an exporter)."""
    return _tracing is not None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the `OTEL_*` variables ask for traces to be exported."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporters(environ)
    if not exporters or exporters == {"none"}:
        return False
    if "console" in exporters:
        return True
    return bool(_endpoint(environ))


def start_tracing(
    service: str,
    environ: Mapping[str, str] = os.environ,
    *,
    exporter: SpanExporter | None = None,
) -> bool:
    """Configure the SDK for this process, once; True if it traces. Call it after any
    fork (the batch processor's thread does not survive one) and before the app is built
    (the factories instrument what they build only once tracing is on). `exporter`
    replaces what the variables name, each span handed to it as it ends (tests)."""
    global _tracing
    if _tracing is not None:
        return True
    if exporter is None and not wanted(environ):
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # OTEL_SERVICE_NAME wins where given (the SDK reads it); otherwise the service's name.
    named = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    resource = Resource.create({**named, "service.namespace": "bazaar", "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for configured in _build_exporters(environ):
            provider.add_span_processor(BatchSpanProcessor(configured))
    global _global_provider_set
    if not _global_provider_set:  # the API allows it once per process (tests start again)
        trace.set_tracer_provider(provider)
        _global_provider_set = True
    _tracing = _Tracing(
        service,
        provider,
        provider.get_tracer("bazaar.platform"),
        TraceContextTextMapPropagator(),
        sql=environ.get(SQL_SPANS_VARIABLE, "").strip().lower() in ("1", "true", "yes"),
    )
    return True


def stop_tracing() -> None:
    """Export what is left and forget the provider (tests; the SDK flushes at exit)."""
    global _tracing
    if _tracing is not None:
        _tracing.provider.shutdown()
        _tracing = None


def _exporters(environ: Mapping[str, str]) -> set[str]:
    raw = environ.get("OTEL_TRACES_EXPORTER", "otlp")
    return {name.strip().lower() for name in raw.split(",") if name.strip()}


def _endpoint(environ: Mapping[str, str]) -> str:
    return environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", ""
    )


def _protocol(environ: Mapping[str, str]) -> str:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = environ.get(name, "").strip()
        if value:
            if value not in PROTOCOLS:
                raise TracingConfigurationError(
                    f"{name}={value!r} is not supported: use {' or '.join(PROTOCOLS)}"
                )
            return value
    return "http/protobuf"


def _build_exporters(environ: Mapping[str, str]) -> list[Any]:
    exporters: list[Any] = []
    wanted_exporters = _exporters(environ)
    unknown = wanted_exporters - {"otlp", "console", "none"}
    if unknown:
        raise TracingConfigurationError(
            f"OTEL_TRACES_EXPORTER: unknown exporter(s) {', '.join(sorted(unknown))}: "
            "use otlp, console or none"
        )
    if "otlp" in wanted_exporters and _endpoint(environ):
        if _protocol(environ) == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            exporters.append(GrpcExporter())
        else:
            from bazaar.platform.otlp_http import otlp_http_exporter

            exporters.append(otlp_http_exporter(environ))
    if "console" in wanted_exporters:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporters.append(ConsoleSpanExporter(out=sys.stderr))
    return exporters


# --- instrumentation, where the platform builds things --------------------------------


def instrument_fastapi(app: FastAPI) -> None:
    if _tracing is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No spans for each ASGI send/receive: two more per request, and they say nothing
    # the server span does not.
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
        tracer_provider=_tracing.provider,
    )


def instrument_flask(app: Flask) -> None:
    if _tracing is None:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor.instrument_app(
        app, excluded_urls=UNTRACED_URLS, tracer_provider=_tracing.provider
    )


def grpc_server_interceptors() -> list[Any]:
    if _tracing is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    untraced = filters.negate(filters.health_check())  # probes would bury the calls
    return [aio_server_interceptor(tracer_provider=_tracing.provider, filter_=untraced)]


def grpc_client_interceptors() -> list[Any]:
    if _tracing is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

    untraced = filters.negate(filters.health_check())
    return list(aio_client_interceptors(tracer_provider=_tracing.provider, filter_=untraced))


def aiohttp_trace_configs() -> list[aiohttp.TraceConfig]:
    if _tracing is None:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config(tracer_provider=_tracing.provider)]


def instrument_engine(engine: Engine) -> None:
    """A span per statement of `engine` (an async engine's `sync_engine`), when tracing
    with BAZAAR_TRACE_SQL."""
    if _tracing is None or not _tracing.sql:
        return
    from opentelemetry.instrumentation.sqlalchemy import __version__
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    # The instrumentation's own engine tracer, on this engine only: its instrumentor is a
    # process-wide singleton that instruments one engine once (and patches SQLAlchemy's
    # engine creation, which we need not), and its declared range stops below SQLAlchemy
    # 2.1, whose engine events it uses unchanged (the platform's tests check the spans).
    tracer = _tracing.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
    pool_usage = NoOpMeter("bazaar").create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, engine, pool_usage)


# --- context across messages -----------------------------------------------------------


def trace_context() -> dict[str, str]:
    """The current span's W3C headers (`traceparent`, and `tracestate` if any); empty when
    tracing is off or no span is current."""
    if _tracing is None:
        return {}
    carrier: dict[str, str] = {}
    _tracing.propagator.inject(carrier)
    return carrier


def inject(carrier: MutableMapping[str, str]) -> None:
    """Add the current trace context to `carrier` (message headers), when tracing."""
    if _tracing is not None:
        carrier.update(trace_context())


# What `span` gives while tracing is off: reusable, it holds nothing.
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def span(
    name: str,
    *,
    kind: SpanKind = "internal",
    attributes: Mapping[str, Any] | None = None,
    parent: Mapping[str, str] | None = None,
    links: Sequence[Mapping[str, str]] = (),
) -> contextlib.AbstractContextManager[Span | None]:
    """A span around the block, current inside it; None (and no cost) when tracing is
    off. `parent` (W3C headers) makes it a child of a remote span instead of the current
    one; `links` (W3C headers each) tie it to other traces. An exception escaping the
    block is recorded on it and sets its status to error."""
    if _tracing is None:
        return _NO_SPAN
    return _span(_tracing, name, kind, attributes, parent, links)


@contextlib.contextmanager
def _span(
    tracing: _Tracing,
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, Any] | None,
    parent: Mapping[str, str] | None,
    links: Sequence[Mapping[str, str]],
) -> Iterator[Span]:
    from opentelemetry import trace

    propagator = tracing.propagator
    context = propagator.extract(dict(parent)) if parent is not None else None
    tied = [
        trace.Link(linked)
        for carrier in links
        if (
            linked := trace.get_current_span(propagator.extract(dict(carrier))).get_span_context()
        ).is_valid
    ]
    with tracing.tracer.start_as_current_span(
        name,
        context=context,
        kind=_kind(kind),
        attributes=dict(attributes or {}),
        links=tied,
    ) as current:
        yield current


@contextlib.contextmanager
def spans_each(
    spans: Sequence[tuple[str, Mapping[str, str], Mapping[str, Any]]], *, kind: SpanKind
) -> Iterator[None]:
    """One span per `(name, parent, attributes)` around the block, none of them current
    (a batch of messages, each continuing its own trace); an exception escaping the block
    is recorded on each. Nothing when tracing is off."""
    if _tracing is None or not spans:
        yield
        return
    from opentelemetry.trace import Status, StatusCode

    started = [
        _tracing.tracer.start_span(
            name,
            context=_tracing.propagator.extract(dict(parent)),
            kind=_kind(kind),
            attributes=dict(attributes),
        )
        for name, parent, attributes in spans
    ]
    try:
        yield
    except BaseException as exc:
        for each in started:
            each.record_exception(exc)
            each.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
        raise
    finally:
        for each in started:
            each.end()


def annotate(attributes: Mapping[str, Any]) -> None:
    """Attributes on the current span (a request's, a consumer's), when tracing."""
    if _tracing is None:
        return
    from opentelemetry.trace import get_current_span

    get_current_span().set_attributes(dict(attributes))


def set_attributes(target: Span | None, attributes: Mapping[str, Any]) -> None:
    """Attributes on a span `span()` gave (None when tracing is off: nothing to do)."""
    if target is not None:
        target.set_attributes(dict(attributes))


def mark_error(target: Span | None, description: str) -> None:
    """The span's status is error, with why (an outcome that is no exception)."""
    if target is not None:
        from opentelemetry.trace import Status, StatusCode

        target.set_status(Status(StatusCode.ERROR, description[:200]))


@functools.cache
def _kind(name: SpanKind) -> Any:
    from opentelemetry.trace import SpanKind as Kind

    return getattr(Kind, name.upper())


# --- logs --------------------------------------------------------------------------------


def add_trace_ids(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's `trace_id` and `span_id` on the line."""
    if _tracing is None:
        return event
    from opentelemetry.trace import get_current_span

    context = get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event
