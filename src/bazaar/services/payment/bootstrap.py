"""The composition root: settings in, a ready app out. Tests pass their own `db`, and may
pass their own `processor`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.cli import run_service_cli, serve_asgi
from bazaar.platform.db import Database
from bazaar.platform.web import create_app, database_resource, standard_readiness
from bazaar.services.payment.app import router
from bazaar.services.payment.handlers import PaymentService, Processor
from bazaar.services.payment.settings import PaymentSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(
    settings: PaymentSettings,
    *,
    db: Database | None = None,
    processor: Processor | None = None,
) -> FastAPI:
    database = db or Database(settings.database_url)
    payments = PaymentService(
        database, processor or Processor(settings.payment_mode, settings.payment_slow_seconds)
    )
    app = create_app(
        "payment",
        provides=payments,
        resources=[database_resource(database)],
        readiness=standard_readiness(database),
    )
    app.include_router(router)
    return app


def main() -> None:
    run_service_cli(PaymentSettings, serve_asgi(build_app), migrations_dir=MIGRATIONS)
