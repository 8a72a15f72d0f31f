"""Running a service process: one call from each service's `__main__`."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from bazaar.platform.config import ServiceSettings
from bazaar.platform.logs import configure_logging


def run_asgi(app: Any, settings: ServiceSettings) -> None:
    """Serve an ASGI app until SIGINT/SIGTERM (uvicorn drains in-flight requests)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    asyncio.run(uvicorn.Server(config).serve())


def start_process(settings: ServiceSettings) -> None:
    """What every service does first: logs configured from its settings."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
