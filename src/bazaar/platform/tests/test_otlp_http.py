"""The OTLP/HTTP exporter on httpx: spans reach a real HTTP endpoint as OTLP protobuf, with
the configured headers; the exporter's own retries still happen (a 503 with Retry-After
is tried again, a 400 is not); a dead endpoint fails the batch without raising; a service
process that traces loads neither requests nor urllib3."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from bazaar.platform.otlp_http import HttpxTransport, client_cert, otlp_http_exporter, tls_verify
from bazaar.testing import free_port
from bazaar.testing.interpreter import fresh_interpreter
from bazaar.testing.otlp import OtlpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def finished_spans(*names: str) -> list[ReadableSpan]:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    tracer = provider.get_tracer("test")
    spans: list[ReadableSpan] = []
    for name in names:
        span = tracer.start_span(name)
        span.end()
        assert isinstance(span, ReadableSpan)
        spans.append(span)
    return spans


def test_spans_reach_the_endpoint_as_otlp_protobuf_with_the_configured_headers(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exporter reads its variables from the environment itself, as the SDK does.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=bazaar")
    exporter = otlp_http_exporter({})
    try:
        assert exporter.export(finished_spans("checkout", "reserve")) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    [headers] = receiver.requests  # at /v1/traces: the receiver answers 404 elsewhere
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-tenant"] == "bazaar"
    assert [span.name for span in receiver.spans] == ["checkout", "reserve"]


def test_the_exporter_retries_what_it_should_and_only_that(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.url}/v1/traces")
    exporter = otlp_http_exporter({})
    try:
        receiver.failures = [(503, {"Retry-After": "0"})]
        assert exporter.export(finished_spans("first")) is SpanExportResult.SUCCESS
        assert len(receiver.requests) == 2  # the 503, then the retry
        assert [span.name for span in receiver.spans] == ["first"]

        receiver.failures = [(400, {})]
        assert exporter.export(finished_spans("refused")) is SpanExportResult.FAILURE
        assert len(receiver.requests) == 3  # a 400 is not tried again
    finally:
        exporter.shutdown()


def test_a_dead_endpoint_fails_the_batch_without_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    exporter = otlp_http_exporter({})
    try:
        assert exporter.export(finished_spans("lost")) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    transport = HttpxTransport()
    try:
        result = transport.request("POST", f"http://127.0.0.1:{port}/v1/traces", timeout=1)
    finally:
        transport.close()
    assert result.status_code is None and transport.is_connection_error(result.error)


def test_certificates_come_from_the_traces_variables_first() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": "/etc/traces-ca.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/etc/me.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/etc/me.key",
    }
    assert tls_verify(environ) == "/etc/traces-ca.pem"
    assert client_cert(environ) == ("/etc/me.pem", "/etc/me.key")
    assert tls_verify({}) is True and client_cert({}) is None


def test_a_tracing_service_process_loads_neither_requests_nor_urllib3() -> None:
    loaded = fresh_interpreter(
        """
        import sys
        from bazaar.platform.telemetry import start_tracing
        assert start_tracing("shop", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
        print(sorted(m for m in ("requests", "urllib3") if m in sys.modules))
        """
    )
    assert loaded == "[]"
