"""The composition root: settings in, a ready app out. Tests pass their own `db`, `bus`,
`verifier` and `pricing`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli, serve_asgi
from bazaar.platform.db import Database
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import bus_resource, create_app, database_resource, standard_readiness
from bazaar.services.cart.app import internal, public, subscribe
from bazaar.services.cart.handlers import CartService
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
    carts = CartService(
        database, pricing or BusPricing(message_bus, settings.cart_quote_timeout_seconds)
    )
    subscribe(message_bus, database, carts)

    app = create_app(
        "cart",
        provides=carts,
        tokens=verifier or TokenVerifier(settings.jwks_url),
        resources=[database_resource(database), bus_resource(message_bus)],
        readiness=standard_readiness(database, message_bus),
    )
    app.include_router(public)
    app.include_router(internal)
    return app


def main() -> None:
    run_service_cli(CartSettings, serve_asgi(build_app), migrations_dir=MIGRATIONS)
