"""OTLP/HTTP trace exports, read: what the services' exporters POST to `/v1/traces`
(`ExportTraceServiceRequest`, protobuf, maybe gzipped) as plain `Span` values."""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

PROTOBUF = "application/x-protobuf"
KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
# A long attribute (a SQL statement, a URL with a query) is cut to this: the store keeps
# what a person reads, bounded.
MAX_ATTRIBUTE = 400
# An export larger than this is refused: the SDK's batches are far smaller.
MAX_EXPORT_BYTES = 16 * 1024 * 1024


class BadExport(ValueError):
    """Not an OTLP trace export this receiver reads."""


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str  # "" for a root
    service: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    error: bool = False
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()  # (trace_id, span_id) each

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6


def decode(body: bytes, content_encoding: str = "") -> list[Span]:
    """The spans of one export; `BadExport` for anything else."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(_inflate(body, content_encoding.strip().lower()))
    except (DecodeError, OSError, EOFError, zlib.error) as exc:
        raise BadExport(f"not an OTLP trace export: {exc}") from None
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name") or "unknown_service")
        for scope_spans in resource_spans.scope_spans:
            spans.extend(_span(service, span) for span in scope_spans.spans)
    return spans


def success() -> bytes:
    """The body of a 200 answer to an export: an empty `ExportTraceServiceResponse`."""
    return bytes(ExportTraceServiceResponse().SerializeToString())


def _inflate(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as file:
            inflated = file.read(MAX_EXPORT_BYTES + 1)
    elif encoding == "deflate":
        inflated = zlib.decompressobj().decompress(body, MAX_EXPORT_BYTES + 1)
    elif encoding in ("", "identity"):
        inflated = body
    else:
        raise BadExport(f"unsupported Content-Encoding {encoding!r}")
    if len(inflated) > MAX_EXPORT_BYTES:
        raise BadExport("export too large")
    return inflated


def _span(service: str, span: Any) -> Span:
    return Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        service=service,
        name=span.name[:200],
        kind=KINDS[span.kind] if 0 <= span.kind < len(KINDS) else "unspecified",
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        error=span.status.code == Status.STATUS_CODE_ERROR,
        status_message=span.status.message[:MAX_ATTRIBUTE],
        attributes=_attributes(span.attributes),
        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value[:MAX_ATTRIBUTE]
    if which in ("bool_value", "int_value", "double_value"):
        return getattr(value, which)
    if which == "array_value":
        return [_value(v) for v in value.array_value.values][:20]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return None
