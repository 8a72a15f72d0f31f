"""The Flask counterpart of `web.py`, for services that run on a WSGI server.

A Flask service gets the same outside as a FastAPI one: problem+json for every error
(validation, 404, 405, 413, 415 and 500 included), an `X-Request-ID` on every response,
`/healthz`, `/readyz`, `/metrics` and RED metrics per route, and its routes reach the
service's typed object as FastAPI routes do (`provides=` here, `uses(...)` in a route;
see `dependencies`). Flask is synchronous, so this module also has what such a service
needs around it: a body parser that validates with pydantic, a synchronous database with
the platform's SQLite tuning, and waitress serving that drains in-flight requests on
SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import structlog
import waitress
from flask import Flask, Response, current_app, g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, event, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from bazaar.platform import metrics
from bazaar.platform.bodylimit import DEFAULT_MAX_BODY_BYTES
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import READ_ONLY, begin_sqlite_transaction, tune_sqlite_connection
from bazaar.platform.logs import get_logger
from bazaar.platform.problems import PROBLEM_JSON, Problem, problem_body
from bazaar.platform.telemetry import instrument_engine, instrument_flask

log = get_logger(__name__)

Model = TypeVar("Model", bound=BaseModel)
Service = TypeVar("Service")
ReadinessCheck = Callable[[], object]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def problem_response(
    status: int,
    detail: str,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = problem_body(status, detail, instance=instance or request.path, **extra)
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON, headers=headers)


# --- request bodies ---------------------------------------------------------------------


def json_body(model: type[Model]) -> Model:
    """The request's JSON body, validated by `model`; any defect is a 415 or 422 problem
    that says what is wrong, so a handler only ever sees valid input."""
    if not request.is_json:
        raise Problem(415, "send a JSON body with 'Content-Type: application/json'")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise Problem(422, "the request body is empty: send a JSON object")
    try:
        # pydantic's own parser: bad UTF-8, broken JSON and absurd nesting are all
        # validation errors here, never an exception a handler did not expect.
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            {
                "loc": [str(p) for p in e["loc"]],
                # A validator's own message needs no "Value error, " in front of it.
                "msg": e["msg"].removeprefix("Value error, "),
                "type": e["type"],
            }
            for e in exc.errors(include_url=False, include_input=False)
        ]
        detail = "; ".join(f"{'.'.join(e['loc']) or 'body'}: {e['msg']}" for e in errors)
        raise Problem(422, detail or "invalid request body", errors=errors) from None


def bearer_token() -> str:
    """The bearer token of the current request, or a 401 that says how to send one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


# --- the app ------------------------------------------------------------------------------


def _install_problem_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return Response(
            json.dumps(exc.body(request.path)),
            status=exc.status,
            mimetype=PROBLEM_JSON,
            headers=exc.headers,
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> BaseResponse:
        status = exc.code or 500
        if status < 400:  # a routing redirect (a missing trailing slash) is no error
            return exc.get_response()
        if status == 404:
            detail = f"no such resource: {request.method} {request.path}"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        elif status == 413:
            detail = f"request body larger than {request.max_content_length} bytes"
        else:
            detail = exc.description or "request failed"
        # Keep the headers that mean something (Allow on a 405), not the HTML content type.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return problem_response(status, detail, headers=headers)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.exception("unhandled error", path=request.path)
        return problem_response(500, "internal error; see the service log")


def _install_request_context(app: Flask, service: str) -> None:
    """Request id in and out, bound to every log line; RED metrics per route template."""

    @app.before_request
    def _start() -> None:
        offered = request.headers.get("X-Request-ID", "")
        g.request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        g.started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        # The template, not the raw path, keeps the metric's label set small.
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.http_requests.labels(
            service, request.method, route, str(response.status_code)
        ).inc()
        started = g.get("started")
        if started is not None:
            latency = metrics.http_latency.labels(service, request.method, route)
            metrics.observe(latency, time.perf_counter() - started)
        return response

    @app.teardown_request
    def _forget(_: BaseException | None) -> None:
        # waitress reuses its threads: the next request must not inherit this id.
        structlog.contextvars.unbind_contextvars("request_id")


def _install_operations(app: Flask, readiness: Sequence[ReadinessCheck]) -> None:
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response | dict[str, str]:
        failures = []
        for check in readiness:
            name = getattr(check, "__name__", "check")
            try:
                if check() is False:
                    failures.append(f"{name}: not ready")
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
        if failures:
            return problem_response(503, "; ".join(failures))
        return {"status": "ready"}

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render(request.headers.get("Accept"))
        return Response(body, content_type=content_type)


def create_flask_app(
    service: str,
    *,
    provides: object | None = None,
    readiness: Sequence[ReadinessCheck] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Flask:
    """A Flask app with the platform's outside. `provides` is what routes get through
    `uses` (the service's typed dependencies and use cases). `readiness` checks are
    plain callables: one that raises or returns False makes `/readyz` answer 503 with its
    reason."""
    app = Flask(f"bazaar.services.{service}")
    if provides is not None:
        app.extensions[_SERVICE_KEY] = provides
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    _install_problem_handlers(app)
    _install_request_context(app, service)
    _install_operations(app, readiness)
    instrument_flask(app)  # a server span per request, when tracing is on
    return app


# The typed object of the app, as `dependencies` keeps it for a FastAPI app.
_SERVICE_KEY = "bazaar.service"


def provided(app: Flask, kind: type[Service]) -> Service:
    """The object `create_flask_app(provides=...)` gave `app`, checked to be a `kind`."""
    service = app.extensions.get(_SERVICE_KEY)
    if not isinstance(service, kind):
        raise RuntimeError(
            f"{app.name}: no {kind.__name__} provided (bootstrap passes "
            "create_flask_app(provides=...))"
        )
    return service


def uses(kind: type[Service]) -> Service:
    """In a route: the current app's `kind` object (`auth = uses(AuthService)`), as
    `dependencies.uses` gives it to a FastAPI route."""
    return provided(current_app, kind)


# --- database -----------------------------------------------------------------------------

# Async drivers in the settings' URL and the synchronous driver that reads the same URL.
_SYNC_DRIVERS = {"aiosqlite": "", "asyncpg": "psycopg", "aiomysql": "pymysql", "asyncmy": "pymysql"}


def sync_url(url: str) -> str:
    """The settings' (async) database URL for a synchronous engine: `sqlite+aiosqlite`
    becomes `sqlite`, `postgresql+asyncpg` becomes `postgresql+psycopg`; others stay."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if driver in _SYNC_DRIVERS:
        sync_driver = _SYNC_DRIVERS[driver]
        parsed = parsed.set(drivername=f"{backend}+{sync_driver}" if sync_driver else backend)
    return parsed.render_as_string(hide_password=False)


class SyncDatabase:
    """`db.Database` for synchronous code: an engine, sessions and a unit of work. It takes
    the same URL as the async one (see `sync_url`), so a service has one setting."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = sync_url(url)
        self.engine = _create_engine(self.url, **engine_kwargs)
        instrument_engine(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A consistent read that never waits for, nor blocks, the writers."""
        with self._read_sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        # A read: a plain connection would take SQLite's write lock (see `db.Database.ping`).
        with self.reading() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_sync_engine(url, **kwargs)
        # The platform's SQLite tuning (WAL, busy_timeout; transactions begun by us).
        event.listen(engine, "connect", tune_sqlite_connection)
        event.listen(engine, "begin", begin_sqlite_transaction)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_sync_engine(url, **kwargs)


# --- serving ------------------------------------------------------------------------------


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # waitress's run() catches KeyboardInterrupt and lets its worker threads finish the
    # requests in flight (up to 5 s) before it returns: SIGTERM gets what Ctrl-C gets.
    raise KeyboardInterrupt


def run_wsgi(
    app: Any,
    settings: ServiceSettings,
    *,
    threads: int = 4,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve a WSGI app with waitress on the settings' host and port until SIGINT/SIGTERM;
    then `on_stop` releases the service's resources."""
    server = waitress.create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=threads,
        ident="bazaar",
        # waitress would drop X-Forwarded-For from every peer; the service decides which
        # proxies it believes (`ratelimit.client_address`), so the header must reach it.
        clear_untrusted_proxy_headers=False,
    )
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    log.info(
        "service started",
        service=settings.service_name,
        host=getattr(server, "effective_host", settings.host),
        port=getattr(server, "effective_port", settings.port),
    )
    try:
        server.run()
    finally:
        server.close()
        signal.signal(signal.SIGTERM, previous)
        if on_stop:
            on_stop()
        log.info("service stopped", service=settings.service_name)
