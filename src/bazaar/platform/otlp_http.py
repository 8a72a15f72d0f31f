"""The official OTLP/HTTP span exporter, sending through httpx instead of requests.

The exporter takes its transport as an argument (`BaseHTTPTransport`; the package ships
one on requests, its default, and one on urllib3). Every service process has httpx loaded
already, and requests with urllib3 would add about 4.5 MiB to each of them, some 40 MiB
over the embedded platform. Everything else stays the exporter's own: the endpoint, the
headers, the timeout, the compression, the retries with backoff and `Retry-After`.

A credential provider (`OTEL_PYTHON_EXPORTER_OTLP_HTTP_*CREDENTIAL_PROVIDER`) hands the
exporter a requests session; where one is named, the exporter keeps its own transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

# Errors before any answer, which the exporter retries at once (a stale pooled connection).
CONNECTION_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
CREDENTIAL_PROVIDERS = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)


@dataclass(frozen=True, slots=True)
class HttpxResult(BaseHTTPResult):
    body: bytes = b""
    response_headers: httpx.Headers = field(default_factory=httpx.Headers)

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        return self.response_headers  # case-insensitive, as the base class asks


class HttpxTransport(BaseHTTPTransport):
    """One pooled httpx client, used from the batch processor's thread."""

    def __init__(
        self, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None
    ) -> None:
        self._client = httpx.Client(verify=verify, cert=cert)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        try:
            response = self._client.request(
                method, url, headers=headers, content=data, timeout=timeout
            )
        except Exception as error:  # the exporter decides: retry, or log and drop the batch
            return HttpxResult(error=error)
        return HttpxResult(
            status_code=response.status_code,
            reason=response.reason_phrase,
            body=response.content,
            response_headers=response.headers,
        )

    def is_connection_error(self, exception: Exception | None) -> bool:
        return isinstance(exception, CONNECTION_ERRORS)

    def close(self) -> None:
        self._client.close()


def otlp_http_exporter(environ: Mapping[str, str]) -> OTLPSpanExporter:
    """The exporter as the `OTEL_EXPORTER_OTLP_*` variables configure it, on httpx."""
    if any(environ.get(name) for name in CREDENTIAL_PROVIDERS):
        return OTLPSpanExporter()
    return OTLPSpanExporter(
        _transport=HttpxTransport(verify=tls_verify(environ), cert=client_cert(environ))
    )


def _setting(environ: Mapping[str, str], name: str) -> str:
    """`OTEL_EXPORTER_OTLP_TRACES_<name>`, else `OTEL_EXPORTER_OTLP_<name>`."""
    return (
        environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}")
        or environ.get(f"OTEL_EXPORTER_OTLP_{name}")
        or ""
    )


def tls_verify(environ: Mapping[str, str]) -> bool | str:
    return _setting(environ, "CERTIFICATE") or True


def client_cert(environ: Mapping[str, str]) -> str | tuple[str, str] | None:
    certificate, key = _setting(environ, "CLIENT_CERTIFICATE"), _setting(environ, "CLIENT_KEY")
    if certificate and key:
        return (certificate, key)
    return certificate or None
