"""Running a service process: one call from each service's `__main__`."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvicorn

from bazaar.platform.config import ServiceSettings
from bazaar.platform.logs import configure_logging


def asgi_server(app: Any, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server that drains in-flight requests on SIGINT/SIGTERM. `await
    server.serve()` runs it; a process serving gRPC too awaits both."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


T = TypeVar("T")


def loop_factory(settings: ServiceSettings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed and wanted: the services spend a good part of their CPU
    in the event loop (sockets, the database driver's thread hand-offs, timers)."""
    if settings.event_loop != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:  # not built for this platform (Windows): the standard loop
        return None
    return uvloop.new_event_loop


# CPython collects its youngest generation whenever 700 more container objects are alive
# than at the last collection. Under load the objects of the requests in flight (tasks,
# frames, spans, sessions) pass that several times a second, and each collection walks
# them all, mostly to find them still alive. Reference counting frees nearly everything
# anyway; the collector is for cycles, which can wait a little longer.
YOUNG_GENERATION_THRESHOLD = 20_000


def settle_garbage_collector() -> None:
    """What a serving process does once its modules are loaded: move everything alive now
    (modules, classes, the app) out of the collector's sight (`gc.freeze`), so that no
    collection walks it again, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


def run(main: Coroutine[Any, Any, T], settings: ServiceSettings) -> T:
    """`asyncio.run(main)` on the event loop the settings choose."""
    settle_garbage_collector()
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        return runner.run(main)


def run_asgi(app: Any, settings: ServiceSettings) -> None:
    """Serve an ASGI app on the settings' host and port until SIGINT/SIGTERM."""
    run(asgi_server(app, settings.host, settings.port).serve(), settings)


def start_process(settings: ServiceSettings) -> None:
    """What every service does first: logs configured from its settings."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
