"""The composition root: settings in, a ready app out. Tests pass their own `db`, `bus`
(under faststream's TestNatsBroker) and token `verifier`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database
from bazaar.platform.inbox import Inbox
from bazaar.platform.serving import run_asgi
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import bus_resource, create_app, database_resource, standard_readiness
from bazaar.services.catalog import app as entrypoints
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
    # Subscriptions are declared before the broker starts (in the lifespan).
    message_bus.on_request(entrypoints.QUOTE_SUBJECT, entrypoints.quote_responder(database))
    message_bus.on_event(
        entrypoints.STOCK_CHANGED,
        entrypoints.CONSUMER,
        entrypoints.stock_consumer(Inbox(database, entrypoints.CONSUMER)),
    )

    app = create_app(
        settings.service_name,
        resources=[database_resource(database), bus_resource(message_bus)],
        readiness=standard_readiness(database, message_bus),
    )
    app.state.token_verifier = verifier or TokenVerifier(settings.jwks_url)
    app.include_router(entrypoints.router)
    return app


def serve(settings: ServiceSettings) -> None:
    assert isinstance(settings, CatalogSettings)
    run_asgi(build_app(settings), settings)


def main() -> None:
    run_service_cli(CatalogSettings, serve, migrations_dir=MIGRATIONS, seed=seed_from_file)
