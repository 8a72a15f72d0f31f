"""HTTP between services: the transport every service-to-service client uses
(`ServiceTransport`), and the resilient client: timeouts, retries with exponential backoff
and jitter (tenacity), and a circuit breaker per target (purgatory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from bazaar.platform import metrics

RETRYABLE_STATUS = frozenset({502, 503, 504})
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
            trust_env=False,
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


class UpstreamError(Exception):
    """The neighbour could not be reached, or answered 5xx, after every retry."""


class CircuitOpen(UpstreamError):
    """The breaker is open: the call was not even tried."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, _RetryableStatus)


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class ResilientClient:
    """One neighbour service. Non-idempotent calls must carry an `Idempotency-Key` to be
    retried; the caller says so with `idempotent=True`."""

    def __init__(
        self,
        service: str,
        target: str,
        base_url: str,
        *,
        timeout: float = 3.0,
        attempts: int = 3,
        breaker_threshold: int = 5,
        breaker_ttl: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.service = service
        self.target = target
        self._attempts = attempts
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport or ServiceTransport(max_connections=100),
        )
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold, default_ttl=breaker_ttl
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def breaker_is_open(self) -> bool:
        breaker = await self._breakers.get_breaker(self.target)
        return breaker.context.state == "opened"

    async def request(
        self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send with retries and the breaker; 4xx answers come back as they are."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        attempts = self._attempts if idempotent else 1
        breaker = await self._breakers.get_breaker(self.target)
        try:
            async with breaker:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(attempts),
                    wait=wait_exponential(multiplier=0.05, max=1.0) + wait_random(0, 0.05),
                    retry=retry_if_exception(_is_transient),
                    reraise=True,
                ):
                    with attempt:
                        response = await self._http.request(method, url, **kwargs)
                        if response.status_code in RETRYABLE_STATUS:
                            raise _RetryableStatus(response)
        except _RetryableStatus as exc:
            raise UpstreamError(f"{self.target} answered {exc.response.status_code}") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(f"{self.target} unreachable: {type(exc).__name__}") from exc
        except OpenedState as exc:
            raise CircuitOpen(f"{self.target}: circuit breaker open") from exc
        finally:
            metrics.breaker_state.labels(self.service, self.target).set(
                int(breaker.context.state == "opened")
            )
        return response
