"""The composition root: settings in, a ready app out. Tests pass their own database, bus,
token verifier and fakes of the neighbours; everything not passed is built for real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli
from bazaar.platform.clients import ResilientClient
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database
from bazaar.platform.outbox import OutboxRelay
from bazaar.platform.serving import run_asgi
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import (
    bus_resource,
    create_app,
    database_resource,
    relay_resource,
    standard_readiness,
)
from bazaar.services.order import app as entrypoints
from bazaar.services.order.adapters import BusPricing, GrpcInventory, HttpCarts, HttpPayments
from bazaar.services.order.ports import Carts, Inventory, Payments, Pricing
from bazaar.services.order.saga import SagaRunner, StepPerformer
from bazaar.services.order.settings import OrderSettings

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = "order"

Closer = Callable[[], Awaitable[None]]


def build_app(
    settings: OrderSettings,
    *,
    db: Database | None = None,
    bus: Bus | None = None,
    token_verifier: TokenVerifier | None = None,
    inventory: Inventory | None = None,
    payments: Payments | None = None,
    carts: Carts | None = None,
    pricing: Pricing | None = None,
) -> FastAPI:
    orders_db = db or Database(settings.database_url)
    event_bus = bus or Bus(settings.broker_url, SERVICE)
    relay = OutboxRelay(orders_db, event_bus, SERVICE)
    closers: list[Closer] = []  # the neighbours' connections built here

    if inventory is None:
        grpc_inventory = GrpcInventory(
            settings.inventory_addr, timeout=settings.inventory_timeout_seconds
        )
        closers.append(grpc_inventory.aclose)
        inventory = grpc_inventory
    if payments is None:
        # The charge is keyed by order id, so its retries are safe (idempotent=True).
        payment_client = ResilientClient(
            SERVICE, "payment", settings.payment_url, timeout=settings.payment_timeout_seconds
        )
        closers.append(payment_client.aclose)
        payments = HttpPayments(payment_client)
    if carts is None:
        cart_client = ResilientClient(SERVICE, "cart", settings.cart_url)
        closers.append(cart_client.aclose)
        carts = HttpCarts(cart_client)
    if pricing is None:
        pricing = BusPricing(event_bus, timeout=settings.quote_timeout_seconds)

    runner = SagaRunner(
        orders_db,
        StepPerformer(inventory, payments),
        settings.saga_policy(),
        concurrency=settings.saga_concurrency,
        poll_seconds=settings.saga_poll_seconds,
        lease_seconds=settings.saga_lease_seconds,
        take_over_leases=orders_db.is_sqlite,
        on_event=relay.wake,
    )

    @asynccontextmanager
    async def neighbours_lifetime(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for close in closers:
                await close()

    @asynccontextmanager
    async def saga_lifetime(app: FastAPI) -> AsyncIterator[None]:
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()

    app = create_app(
        SERVICE,
        resources=[
            database_resource(orders_db),
            bus_resource(event_bus),
            relay_resource(relay),
            neighbours_lifetime,
            saga_lifetime,
        ],
        readiness=standard_readiness(orders_db, event_bus),
    )
    app.state.settings = settings
    app.state.db = orders_db
    app.state.bus = event_bus
    app.state.relay = relay
    app.state.saga_runner = runner
    app.state.carts = carts
    app.state.pricing = pricing
    app.state.token_verifier = token_verifier or TokenVerifier(settings.jwks_url)
    app.include_router(entrypoints.router)
    return app


def serve(settings: ServiceSettings) -> None:
    assert isinstance(settings, OrderSettings)
    run_asgi(build_app(settings), settings)


def main() -> None:
    run_service_cli(OrderSettings, serve, migrations_dir=MIGRATIONS)
