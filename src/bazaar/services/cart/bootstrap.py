"""The composition root: settings in, a ready app out. Tests pass their own `db`, `bus`,
`verifier` and `pricing`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database
from bazaar.platform.serving import run_asgi
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import create_app
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

    @asynccontextmanager
    async def database_lifetime(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = database
        try:
            yield
        finally:
            await database.dispose()

    @asynccontextmanager
    async def bus_lifetime(app: FastAPI) -> AsyncIterator[None]:
        # Started after the database (consumers write to it), stopped before it.
        await message_bus.start()
        try:
            yield
        finally:
            await message_bus.stop()

    # Named checks: /readyz reports failures by function name.
    async def database_reachable() -> None:
        await database.ping()

    async def bus_reachable() -> bool:
        return await message_bus.ping()

    app = create_app(
        "cart",
        resources=[database_lifetime, bus_lifetime],
        readiness=[database_reachable, bus_reachable],
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
