"""What the Pact tests share: the pact files kept in contracts/pacts/, a real provider app
served on a free loopback port (uvicorn for the ASGI services, waitress for auth), and
the verification of a provider against every pact that names it.

Consumer tests write their pact to a temporary folder and compare it with the committed
one: a consumer whose expectations changed rewrites contracts/pacts/ and fails once, so
the change is reviewed and committed with the code, and the providers are always
verified against what is in the repository."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from bazaar.testing import free_port

from .tools import CONTRACTS, missing

try:
    import pact
except ImportError:  # skipped on a laptop without it, a failure in CI
    missing("pact-python is not installed: pip install -e '.[dev]' (make install does)")

PACTS = CONTRACTS / "pacts"
T = TypeVar("T")
# A provider state's set-up; what it returns (e.g. {"order_id": ...}) is given to the
# verifier for the pact's provider-state generators (`${order_id}`).
StateHandler = Callable[[], Mapping[str, Any] | None]


def new_pact(consumer: str, provider: str) -> Any:
    return pact.Pact(consumer, provider).with_specification("V4")


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A pact without what changes with the tool's version."""
    return {key: value for key, value in document.items() if key != "metadata"}


def keep(written: Any, folder: Path) -> None:
    """Write the pact and compare it with the committed one (see the module docstring)."""
    written.write_file(folder, overwrite=True)
    (path,) = folder.glob(f"{written.consumer}-{written.provider}.json")
    committed = PACTS / path.name
    fresh = json.loads(path.read_text())
    if committed.exists() and _comparable(json.loads(committed.read_text())) == _comparable(fresh):
        return
    PACTS.mkdir(exist_ok=True)
    shutil.copy(path, committed)
    pytest.fail(
        f"{committed.relative_to(CONTRACTS.parent)} changed: rewritten, review and commit it"
    )


# -- a provider on a real socket --------------------------------------------------------


class ServedApp:
    """An ASGI app under uvicorn in a thread of its own, with its own event loop. Provider
    states are set up by running the provider's own async code on that loop (`run`)."""

    def __init__(
        self, app: Any, around: Callable[[], AbstractAsyncContextManager[Any]] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._around = around or nullcontext
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        # `around` wraps the whole life of the server: an in-memory broker, for one.
        async with self._around():
            await self._server.serve()

    def run(self, coroutine: Awaitable[T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)  # type: ignore[arg-type]

    def __enter__(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the provider app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._loop.close()


@contextmanager
def served_wsgi(app: Any) -> Iterator[str]:
    """A WSGI app (auth, Flask) under waitress, as it runs in production; yields its URL."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(timeout=10)


# -- verification ------------------------------------------------------------------------


@contextmanager
def state_server(states: Mapping[str, StateHandler]) -> Iterator[str]:
    """The URL the verifier posts each provider state change to (`{state, params,
    action}`); the state's handler runs and its values go back as the JSON answer, which
    the verifier injects where the pact says `fromProviderState`. (pact-python's own
    function handlers answer nothing, so they cannot inject values.)"""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            change = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            name = change.get("state") or ""
            try:
                if change.get("action", "setup") != "setup" or (name == "" and "" not in states):
                    values: Mapping[str, Any] | None = {}
                else:
                    values = states[name]()
                body, status = json.dumps(dict(values or {})).encode(), 200
            except Exception as exc:  # the verifier reports the state as failed
                body, status = f"state {name!r}: {type(exc).__name__}: {exc}".encode(), 500
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pact-states"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def verify(
    provider: str,
    url: str,
    states: Mapping[str, StateHandler],
    *,
    headers: Mapping[str, str] | None = None,
    pacts: Path = PACTS,
) -> None:
    """Replay every pact in `pacts` that names `provider` against the app at `url`;
    fails with the verifier's own account of each mismatch."""
    sources = sorted(pacts.glob(f"*-{provider}.json"))
    assert sources, f"no pact names the provider {provider} in {pacts}"
    verifier = pact.Verifier(provider, host="127.0.0.1").add_transport(url=url)
    for source in sources:
        verifier.add_source(source)
    for name, value in (headers or {}).items():
        verifier.add_custom_header(name, value)
    verifier.set_coloured_output(enabled=False)
    # The default 5 s per request is too short on a loaded machine (CI shares its cores).
    verifier.set_request_timeout(30_000)
    with state_server(states) as state_url:
        verifier.state_handler(state_url, teardown=False, body=True)
        try:
            verifier.verify()
        except Exception as exc:
            pytest.fail(
                f"{provider} breaks a consumer's pact:\n{verifier.output(strip_ansi=True)}\n{exc}"
            )
