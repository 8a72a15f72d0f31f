"""The FastAPI app factory every HTTP service calls once.

It gives each service the same outside: problem+json for every error (validation, 404,
405, 500 included), an `X-Request-ID` on every response, `/healthz`, `/readyz`, `/metrics`,
RED metrics per route, and a lifespan that starts and stops the service's resources.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bazaar.platform import metrics
from bazaar.platform.bodylimit import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.dependencies import provide
from bazaar.platform.logs import get_logger
from bazaar.platform.outbox import OutboxRelay
from bazaar.platform.problems import PROBLEM_JSON, Problem, problem_body
from bazaar.platform.telemetry import instrument_fastapi

if TYPE_CHECKING:
    # Imported where tokens are verified: PyJWT loads cryptography's OpenSSL bindings,
    # about 8.6 MiB in each process, and payment, inventory and notification verify none.
    from bazaar.platform.tokens import TokenVerifier

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[object]]
Resource = Callable[[FastAPI], AbstractAsyncContextManager[object]]


def problem_response(
    status: int,
    detail: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, instance=instance, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    return detail, errors


# What FastAPI says of a body it cannot decode at all, and what the platform says instead.
UNREADABLE_BODY = "There was an error parsing the body"
UNREADABLE_BODY_DETAIL = (
    "the request body is no JSON this service reads (not UTF-8, or nested too deep)"
)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return JSONResponse(
            exc.body(request.url.path),
            status_code=exc.status,
            media_type=PROBLEM_JSON,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _describe_validation(exc)
        return problem_response(422, detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        status, headers = exc.status_code, exc.headers
        if status == 404 and detail == "Not Found":
            detail = f"no such resource: {request.method} {request.url.path}"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
            # Starlette names the methods of the first route on the path only.
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        elif status == 400 and detail == UNREADABLE_BODY:
            # FastAPI's answer to a body it cannot decode at all (not UTF-8, or nested past
            # Python's recursion limit): the same 422 as for any other broken JSON.
            status, detail = 422, UNREADABLE_BODY_DETAIL
        return problem_response(status, detail, request.url.path, headers=headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(500, "internal error; see the service log", request.url.path)


REQUEST_ID = "request_id"


class RequestContextMiddleware:
    """Request id in and out, bound to every log line; RED metrics per route template."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
        scope.setdefault("state", {})[REQUEST_ID] = request_id  # Request.state.request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            method, route = scope["method"], _route_template(scope)
            _requests_counted(self.service, method, route, status).inc()
            latency = _latency_timed(self.service, method, route)
            metrics.observe(latency, time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")


def request_id(scope: Scope) -> str:
    """The id of the request in `scope` (the caller's X-Request-ID, or one made for it):
    send it on to the services this request calls."""
    return str(scope.get("state", {}).get(REQUEST_ID, ""))


def _request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID (cut short), or a new one."""
    for name, value in headers:
        if name == b"x-request-id" and value:
            return value.decode("latin-1")[:64]
    return uuid.uuid4().hex


def _route_template(scope: Scope) -> str:
    """The template of the route that answered (the router left it in the scope): the
    template, not the raw path, keeps the metric's label set small. A request no route
    took (404, or refused before routing) is "unmatched"."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


# prometheus-client finds a labelled child under a lock on each `labels()`; the label
# sets are few (routes x methods x statuses), so each is found once.
@functools.lru_cache(maxsize=4096)
def _requests_counted(service: str, method: str, route: str, status: int) -> Counter:
    return metrics.http_requests.labels(service, method, route, str(status))


@functools.lru_cache(maxsize=2048)
def _latency_timed(service: str, method: str, route: str) -> Histogram:
    return metrics.http_latency.labels(service, method, route)


def database_resource(db: Database) -> Resource:
    """The service's database, in `app.state.db` while the app runs, disposed after."""

    @asynccontextmanager
    async def database_lifetime(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = db
        try:
            yield
        finally:
            await db.dispose()

    return database_lifetime


def bus_resource(bus: Bus) -> Resource:
    """The bus, in `app.state.bus`. List it after the database: consumers write to it, so
    the bus starts after the database and stops before it. Subscribe before it starts."""

    @asynccontextmanager
    async def bus_lifetime(app: FastAPI) -> AsyncIterator[None]:
        app.state.bus = bus
        await bus.start()
        try:
            yield
        finally:
            await bus.stop()

    return bus_lifetime


def relay_resource(relay: OutboxRelay) -> Resource:
    """The outbox relay's background task; list it after the bus it publishes on."""

    @asynccontextmanager
    async def relay_lifetime(app: FastAPI) -> AsyncIterator[None]:
        relay.start()
        try:
            yield
        finally:
            await relay.stop()

    return relay_lifetime


def standard_readiness(db: Database | None = None, bus: Bus | None = None) -> list[ReadinessCheck]:
    """Readiness checks named for what they check: /readyz reports failures by name."""
    checks: list[ReadinessCheck] = []
    if db is not None:

        async def database_reachable() -> None:
            await db.ping()

        checks.append(database_reachable)
    if bus is not None:

        async def broker_reachable() -> bool:
            return await bus.ping()

        checks.append(broker_reachable)
    return checks


def create_app(
    service: str,
    *,
    title: str | None = None,
    resources: Sequence[Resource] = (),
    readiness: Sequence[ReadinessCheck] = (),
    provides: object | None = None,
    tokens: TokenVerifier | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """An app with the platform's outside. `resources` are async context managers entered
    at start-up in order (database, bus, background tasks) and left in reverse.
    `provides` is what routes get through `dependencies.uses` (the service's typed
    dependencies and use cases); `tokens` verifies the bearer tokens of `CurrentUser`
    and `AdminUser`. A request body over `max_body_bytes` is a 413 problem."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for resource in resources:
                await stack.enter_async_context(resource(app))
            log.info("service started", service=service)
            yield
        log.info("service stopped", service=service)

    app = FastAPI(title=title or f"bazaar {service}", lifespan=lifespan, **fastapi_kwargs)
    if provides is not None:
        provide(app, provides)
    if tokens is not None:
        from bazaar.platform.tokens import verify_tokens_with

        verify_tokens_with(app, tokens)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(RequestContextMiddleware, service=service)  # outermost but tracing's
    instrument_fastapi(app)  # a server span around all of it, when tracing is on

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Every dependency is reachable")
    async def readyz() -> JSONResponse:
        failures = []
        for check in readiness:
            try:
                result = await check()
                if result is False:
                    failures.append(f"{check.__name__}: not ready")
            except Exception as exc:
                failures.append(f"{check.__name__}: {type(exc).__name__}: {exc}")
        if failures:
            return problem_response(503, "; ".join(failures), "/readyz")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return app
