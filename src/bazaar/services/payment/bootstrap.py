"""The composition root: settings in, a ready app out. Tests pass their own `db`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database
from bazaar.platform.serving import run_asgi
from bazaar.platform.web import create_app
from bazaar.services.payment import app as entrypoints
from bazaar.services.payment.handlers import Processor
from bazaar.services.payment.settings import PaymentSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: PaymentSettings, *, db: Database | None = None) -> FastAPI:
    database = db or Database(settings.database_url)

    @asynccontextmanager
    async def database_lifetime(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = database
        try:
            yield
        finally:
            await database.dispose()

    app = create_app("payment", resources=[database_lifetime], readiness=[database.ping])
    app.state.processor = Processor(settings.payment_mode, settings.payment_slow_seconds)
    app.include_router(entrypoints.router)
    return app


def serve(settings: ServiceSettings) -> None:
    assert isinstance(settings, PaymentSettings)
    run_asgi(build_app(settings), settings)


def main() -> None:
    run_service_cli(PaymentSettings, serve, migrations_dir=MIGRATIONS)
