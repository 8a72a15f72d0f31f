"""The composition root: settings in, a ready app out. Tests pass their own `db`, `bus`,
`verifier` and `pricing`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database
from bazaar.platform.serving import run_asgi
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import bus_resource, create_app, database_resource, standard_readiness
from bazaar.services.cart import app as entrypoints
from bazaar.services.cart.pricing import BusPricing, Pricing
from bazaar.services.cart.settings import CartSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_app(
    settings: CartSettings,
    *,
    db: Database | None = None,
    bus: Bus | None = None,
    verifier: TokenVerifier | None = None,
    pricing: Pricing | None = None,
) -> FastAPI:
    database = db or Database(settings.database_url)
    message_bus = bus or Bus(settings.broker_url, settings.service_name)
    entrypoints.subscribe(message_bus, database)

    app = create_app(
        "cart",
        resources=[database_resource(database), bus_resource(message_bus)],
        readiness=standard_readiness(database, message_bus),
    )
    app.state.token_verifier = verifier or TokenVerifier(settings.jwks_url)
    app.state.pricing = pricing or BusPricing(message_bus, settings.cart_quote_timeout_seconds)
    app.include_router(entrypoints.public)
    app.include_router(entrypoints.internal)
    return app


def serve(settings: ServiceSettings) -> None:
    assert isinstance(settings, CartSettings)
    run_asgi(build_app(settings), settings)


def main() -> None:
    run_service_cli(CartSettings, serve, migrations_dir=MIGRATIONS)
