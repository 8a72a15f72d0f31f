"""Running a service process: one call from each service's `__main__`."""

from __future__ import annotations

import asyncio
from typing import Any

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


def run_asgi(app: Any, settings: ServiceSettings) -> None:
    """Serve an ASGI app on the settings' host and port until SIGINT/SIGTERM."""
    asyncio.run(asgi_server(app, settings.host, settings.port).serve())


def start_process(settings: ServiceSettings) -> None:
    """What every service does first: logs configured from its settings."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
