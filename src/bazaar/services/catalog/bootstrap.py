"""The composition root: settings in, a ready app out. Tests pass their own `db`, `bus`
(on `memory://`) and token `verifier`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli, serve_asgi
from bazaar.platform.db import Database
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import bus_resource, create_app, database_resource, standard_readiness
from bazaar.services.catalog.app import router, subscribe
from bazaar.services.catalog.handlers import CatalogService
from bazaar.services.catalog.seed import seed_from_file
from bazaar.services.catalog.settings import CatalogSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(
    settings: CatalogSettings,
    *,
    db: Database | None = None,
    bus: Bus | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    database = db or Database(settings.database_url)
    message_bus = bus or Bus(settings.broker_url, settings.service_name)
    catalog = CatalogService(database)
    subscribe(message_bus, database, catalog)  # before the broker starts (in the lifespan)

    app = create_app(
        settings.service_name,
        provides=catalog,
        tokens=verifier or TokenVerifier(settings.jwks_url),
        resources=[database_resource(database), bus_resource(message_bus)],
        readiness=standard_readiness(database, message_bus),
    )
    app.include_router(router)
    return app


def main() -> None:
    run_service_cli(
        CatalogSettings, serve_asgi(build_app), migrations_dir=MIGRATIONS, seed=seed_from_file
    )
