"""The transport every HTTP client between services uses: httpx's API over aiohttp's
connection pool. Its own module, so that a service importing it (the gateway) does not load
the resilient client's retry and breaker libraries."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport

from bazaar.platform.telemetry import aiohttp_trace_configs

# Below uvicorn's 5 s keep-alive timeout: the client drops an idle connection before the
# server can close it under a request just sent.
KEEPALIVE_SECONDS = 4.0
# What aiohttp would add to a request that lacks them; the request is sent as httpx built it.
AUTO_HEADERS = ("Content-Type", "Accept", "Accept-Encoding", "User-Agent")


class ServiceTransport(AiohttpTransport):
    """httpx's API over aiohttp's connection pool, for calls to neighbour services.

    httpcore's pool scans every pooled connection on every request (and asks anyio about
    each socket), which made it most of the gateway's CPU; aiohttp's pool is a lookup per
    host. Tests still pass any httpx transport instead. Where this differs from
    `httpx_aiohttp.AiohttpTransport`:

    - the target goes out exactly as httpx encoded it (yarl would re-quote it: `%2e%2e`
      would become `..`);
    - a header value that is UTF-8 reaches the service as the same bytes (aiohttp writes
      header text as UTF-8; a value that is not UTF-8 goes as its latin-1 reading);
    - a connect that fails is tried `retries` more times: nothing was sent, so it is safe
      for any method (aiohttp itself resends an idempotent request once when a kept-alive
      connection turns out closed);
    - every aiohttp failure is the httpx error of its kind: a connect failure or connect
      timeout (the service is down) is never mistaken for a read timeout (it is slow);
    - no cookie jar: nothing one caller's answer set is sent on another caller's request;
      and no header the caller did not write (no default Content-Type on a bare body).
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        retries: int = 1,
    ) -> None:
        super().__init__(
            limits=httpx.Limits(
                max_connections=max_connections, keepalive_expiry=keepalive_seconds
            ),
            retries=retries,
            # One TLS context for every transport of the process: each context loads the
            # whole CA store (~0.7 MiB), and most neighbours speak plain HTTP anyway.
            verify=_tls_context(),
        )

    def get_client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            # httpx wrote the headers the request needs. A body without a Content-Type
            # must not gain one: FastAPI reads such a body as JSON, not as octet-stream.
            skip_auto_headers=AUTO_HEADERS,
            # A client span per call, its context sent in `traceparent` (tracing on).
            trace_configs=aiohttp_trace_configs() or None,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        options: dict[str, Any] = {
            "headers": [
                (name.decode("latin-1"), _header_text(value))
                for name, value in request.headers.raw
                if name.lower() != b"transfer-encoding"  # the body is sent whole
            ],
            "data": (await request.aread()) or None,
            "allow_redirects": False,
            "auto_decompress": False,
            "timeout": aiohttp.ClientTimeout(
                sock_connect=timeout.get("connect"),
                sock_read=timeout.get("read"),
                connect=timeout.get("pool"),
            ),
        }
        url = yarl.URL(str(request.url), encoded=True)
        for attempt in range(self.retries + 1):
            try:
                with _httpx_errors():
                    answer = await self.client.request(request.method, url, **options)
                break
            except httpx.ConnectError:
                if attempt == self.retries:
                    raise
        return httpx.Response(
            status_code=answer.status,
            headers=answer.raw_headers,
            stream=_AnswerBody(answer),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (answer.reason or "").encode(),
            },
        )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _AnswerBody(httpx.AsyncByteStream):
    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for chunk in self._answer.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool if the body was read to its end, closed if not.
        self._answer.release()


def _header_text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _as_httpx_error(exc) from exc


def _as_httpx_error(exc: Exception) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, TimeoutError):  # aiohttp.SocketTimeoutError among them
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    # The connection broke mid-way (ServerDisconnectedError, ClientPayloadError, ...).
    return httpx.ReadError(message)
