"""The services behind the gateway: one transport per HTTP upstream (its pool of keep-alive
connections), the one generic method that forwards a public request to the service that
owns its path, straight to that transport, and inventory's gRPC channel.

The gateway does not retry a forwarded call: most public writes are not idempotent, and
the client is the one who knows (and sends an `Idempotency-Key` when it does).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping

import grpc
import httpx
from fastapi import Request
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from bazaar.contracts.generated import inventory_pb2_grpc
from bazaar.platform import web
from bazaar.platform.grpc import create_channel
from bazaar.platform.logs import get_logger
from bazaar.platform.problems import NotFound, Problem
from bazaar.platform.transport import ServiceTransport

log = get_logger(__name__)

# What a client may tell the service behind the gateway; everything else (cookies above
# all) stays at the gateway.
REQUEST_HEADERS = (
    "authorization",
    "idempotency-key",
    "content-type",
    "accept",
    "accept-language",
    "last-event-id",
)
# ...and what the gateway reads to say who is calling (sent on as X-Forwarded-*).
FORWARDED_REQUEST_HEADERS = frozenset(
    name.encode() for name in (*REQUEST_HEADERS, "host", "x-forwarded-for")
)
# What the service may tell the client. X-Request-ID is not copied: the gateway sends the
# service its own request id, and its middleware puts that same id on the response.
RESPONSE_HEADERS = frozenset(
    {"content-type", "retry-after", "www-authenticate", "location", "cache-control"}
)
TransportOverride = httpx.AsyncBaseTransport | Mapping[str, httpx.AsyncBaseTransport] | None
# Targets up to this long have their upstream URL parsed once (1024 kept, ~1 MiB at most).
CACHED_TARGET_LENGTH = 320


class UpstreamUnavailable(Problem):
    def __init__(self, upstream: str) -> None:
        super().__init__(
            503,
            f"the {upstream} service is unavailable; try again shortly",
            headers={"Retry-After": "2"},
        )


class UpstreamTimeout(Problem):
    def __init__(self, upstream: str) -> None:
        super().__init__(504, f"the {upstream} service did not answer in time")


class BodyTooLarge(Problem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


def upstream_failure(upstream: str, exc: httpx.HTTPError) -> Problem:
    """A connect failure means the service is down (503); a slow answer, a timeout (504)."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(
        exc, httpx.ConnectTimeout | httpx.PoolTimeout
    ):
        return UpstreamTimeout(upstream)
    return UpstreamUnavailable(upstream)


class Upstreams:
    """The HTTP services the gateway talks to, by name (auth, catalog, cart, order)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeout: float,
        stream_timeout: float,
        max_body_bytes: int,
        transport: TransportOverride = None,
    ) -> None:
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 2.0))
        self.stream_timeout = httpx.Timeout(stream_timeout, connect=min(timeout, 2.0))
        self.max_body_bytes = max_body_bytes
        self._urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._transports = {name: _transport_for(name, transport) for name in urls}
        # For the calls the gateway makes itself (the storefront's); `send` forwards.
        self._clients = {
            name: httpx.AsyncClient(base_url=url, timeout=self.timeout, transport=transport)
            for (name, url), transport in zip(urls.items(), self._transports.values(), strict=True)
        }
        self._timeouts = {False: self.timeout.as_dict(), True: self.stream_timeout.as_dict()}

    @property
    def names(self) -> list[str]:
        return list(self._clients)

    def client(self, name: str) -> httpx.AsyncClient:
        return self._clients[name]

    async def send(
        self,
        upstream: str,
        method: str,
        target: str,
        headers: Mapping[bytes, bytes],
        body: bytes,
        *,
        long_lived: bool = False,
    ) -> httpx.Response:
        """One request, exactly as given, straight to the upstream's transport: no client
        in between to follow redirects, keep cookies or add headers (httpx adds `Host`).
        The answer's body is not read yet."""
        request = httpx.Request(
            method,
            _upstream_url(self._urls[upstream], target),
            headers=headers,
            content=body or None,
            extensions={"timeout": self._timeouts[long_lived]},
        )
        return await self._transports[upstream].handle_async_request(request)

    async def forward(
        self, request: Request, upstream: str, *, long_lived: bool = False
    ) -> Response:
        """Send the request, unchanged, to `upstream` and answer with what it answers:
        status, the headers a client needs, and the body (streamed through when it is an
        event stream). `long_lived` allows a stream to stay silent for `stream_timeout`
        rather than `timeout`."""
        body = await _body(request, self.max_body_bytes)
        try:
            answer = await self.send(
                upstream,
                request.method,
                _target(request),
                _forwarded_headers(request),
                body,
                long_lived=long_lived,
            )
        except httpx.HTTPError as exc:
            log.warning("upstream call failed", upstream=upstream, error=type(exc).__name__)
            raise upstream_failure(upstream, exc) from exc
        headers = {
            name: value for name, value in answer.headers.items() if name in RESPONSE_HEADERS
        }
        if headers.get("content-type", "").startswith("text/event-stream"):
            headers["x-accel-buffering"] = "no"  # a buffering proxy in front would hold events
            return StreamingResponse(
                _relay(answer, upstream),
                status_code=answer.status_code,
                headers=headers,
                background=BackgroundTask(answer.aclose),
            )
        try:
            content = await answer.aread()
        except httpx.HTTPError as exc:
            raise upstream_failure(upstream, exc) from exc
        finally:
            await answer.aclose()
        return Response(content, status_code=answer.status_code, headers=headers)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))

    async def check_ready(self, probe_seconds: float = 1.0) -> None:
        """Every upstream's /healthz answers 200, asked all at once."""

        async def probe(name: str) -> None:
            response = await self._clients[name].get("/healthz", timeout=probe_seconds)
            response.raise_for_status()

        results = await asyncio.gather(*(probe(n) for n in self._clients), return_exceptions=True)
        failures = [
            f"{name}: {type(result).__name__}"
            for name, result in zip(self._clients, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if failures:
            raise RuntimeError(", ".join(failures))


class Inventory:
    """The inventory service, which speaks nothing but gRPC: the stub the admin stock routes
    call, and its health for /readyz. The channel is made on first use: a grpc.aio channel
    belongs to the event loop it was made in, and the app's loop starts after bootstrap."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._channel: grpc.aio.Channel | None = None

    def _connected(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = create_channel(self._address)
        return self._channel

    @functools.cached_property
    def stock(self) -> inventory_pb2_grpc.InventoryStub:
        return inventory_pb2_grpc.InventoryStub(self._connected())

    async def check_serving(self, probe_seconds: float = 1.0) -> None:
        health = health_pb2_grpc.HealthStub(self._connected())
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=probe_seconds)
        except grpc.aio.AioRpcError as exc:
            raise RuntimeError(f"inventory: {exc.code().name}") from exc
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError("inventory: not serving")

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def _upstream_url(base: str, target: str) -> httpx.URL:
    """httpx parses a URL in Python, character by character, and most forwarded targets
    repeat (the product list, the cart, an order polled until paid): each is parsed once.
    Only short ones are kept, so the cache stays small whatever URLs clients make up."""
    if len(target) > CACHED_TARGET_LENGTH:
        return httpx.URL(base + target)
    return _parsed_url(base, target)


@functools.lru_cache(maxsize=1024)
def _parsed_url(base: str, target: str) -> httpx.URL:
    return httpx.URL(base + target)


def _transport_for(name: str, override: TransportOverride) -> httpx.AsyncBaseTransport:
    if isinstance(override, Mapping):
        return override[name]
    if override is not None:
        return override
    # It retries a failed connect once (never a sent request), so a neighbour restarting
    # costs no error.
    return ServiceTransport(max_connections=200)


def _forwarded_headers(request: Request) -> dict[bytes, bytes]:
    """The headers the service gets: the client's that it may see (as the bytes they
    came in: a value past ASCII passes unchanged), the gateway's request id, and who is
    really calling (`X-Forwarded-*`: per-client rate limits on auth)."""
    headers: dict[bytes, bytes] = {}
    for name, value in request.scope["headers"]:  # names come lower-cased
        if name in FORWARDED_REQUEST_HEADERS:
            headers.setdefault(name, value)  # the first of repeated headers, as Starlette
    host = headers.pop(b"host", None)
    prior_hops = headers.pop(b"x-forwarded-for", None)
    # The platform middleware made the id (or took the caller's); the service gets it.
    if request_id := web.request_id(request.scope):
        headers[b"x-request-id"] = request_id.encode("latin-1")
    headers[b"x-forwarded-for"] = _with_client(prior_hops, request).encode("latin-1")
    headers[b"x-forwarded-proto"] = request.scope["scheme"].encode()
    if host is not None:
        headers[b"x-forwarded-host"] = host
    return headers


def _with_client(prior_hops: bytes | None, request: Request) -> str:
    client_host = request.client.host if request.client else ""
    return f"{prior_hops.decode('latin-1')}, {client_host}" if prior_hops else client_host


def forwarded_for(request: Request) -> str:
    """`X-Forwarded-For` as the services get it: what came in, plus the address this
    request came from (whether to believe the rest is the service's call)."""
    prior = request.headers.get("x-forwarded-for")
    return _with_client(prior.encode("latin-1") if prior else None, request)


def _target(request: Request) -> str:
    """The path and query exactly as the client sent them (still percent-encoded)."""
    path: str = request.scope["path"]  # decoded
    if any(segment in (".", "..") for segment in path.split("/")):
        raise NotFound(f"no such resource: {request.method} {path}")
    raw_path = request.scope.get("raw_path") or path.encode()
    target = raw_path.decode("latin-1")
    if query := request.scope.get("query_string", b""):
        target += "?" + query.decode("latin-1")
    return target


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    if not declared and "transfer-encoding" not in request.headers:
        return b""  # neither a length nor chunks: HTTP/1.1 says there is no body
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _relay(answer: httpx.Response, upstream: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_bytes():
            yield chunk
    except httpx.HTTPError as exc:
        # The headers are sent already: all that is left is to end the stream cleanly;
        # an SSE client reconnects (or polls) on its own.
        log.warning("upstream stream broken", upstream=upstream, error=type(exc).__name__)
