"""The composition root: settings in, a ready app out. Tests pass their own `db`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database
from bazaar.platform.serving import run_asgi
from bazaar.platform.web import create_app, database_resource, standard_readiness
from bazaar.services.payment import app as entrypoints
from bazaar.services.payment.handlers import Processor
from bazaar.services.payment.settings import PaymentSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(settings: PaymentSettings, *, db: Database | None = None) -> FastAPI:
    database = db or Database(settings.database_url)

    app = create_app(
        "payment",
        resources=[database_resource(database)],
        readiness=standard_readiness(database),
    )
    app.state.processor = Processor(settings.payment_mode, settings.payment_slow_seconds)
    app.include_router(entrypoints.router)
    return app


def serve(settings: ServiceSettings) -> None:
    assert isinstance(settings, PaymentSettings)
    run_asgi(build_app(settings), settings)


def main() -> None:
    run_service_cli(PaymentSettings, serve, migrations_dir=MIGRATIONS)
