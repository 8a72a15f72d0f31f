"""The composition root: settings in, a ready app out. Tests pass their own database, bus,
token verifier and fakes of the neighbours; everything not passed is built for real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli, serve_asgi
from bazaar.platform.clients import ResilientClient
from bazaar.platform.db import Database
from bazaar.platform.outbox import OutboxRelay
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import (
    Resource,
    bus_resource,
    create_app,
    database_resource,
    relay_resource,
    standard_readiness,
)
from bazaar.services.order.adapters import BusPricing, GrpcInventory, HttpCarts, HttpPayments
from bazaar.services.order.app import router
from bazaar.services.order.handlers import OrderService
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
    closers: list[Closer] = []  # the connections to the neighbours built here
    steps = StepPerformer(
        inventory or _inventory(settings, closers), payments or _payments(settings, closers)
    )
    runner = SagaRunner(
        orders_db,
        steps,
        settings.saga_policy(),
        concurrency=settings.saga_concurrency,
        poll_seconds=settings.saga_poll_seconds,
        lease_seconds=settings.saga_lease_seconds,
        take_over_leases=orders_db.is_sqlite,
    )
    orders = OrderService(
        orders_db,
        carts or _carts(settings, closers),
        pricing or BusPricing(event_bus, timeout=settings.quote_timeout_seconds),
        runner,
        watch_poll_seconds=settings.order_events_poll_seconds,
        watch_max_seconds=settings.order_events_max_seconds,
    )
    app = create_app(
        SERVICE,
        provides=orders,
        tokens=token_verifier or TokenVerifier(settings.jwks_url),
        resources=[
            database_resource(orders_db),
            bus_resource(event_bus),
            relay_resource(OutboxRelay(orders_db, event_bus, SERVICE)),
            _closing(closers),
            _running(runner),
        ],
        readiness=standard_readiness(orders_db, event_bus),
    )
    app.include_router(router)
    return app


def _inventory(settings: OrderSettings, closers: list[Closer]) -> Inventory:
    inventory = GrpcInventory(settings.inventory_addr, timeout=settings.inventory_timeout_seconds)
    closers.append(inventory.aclose)
    return inventory


def _payments(settings: OrderSettings, closers: list[Closer]) -> Payments:
    # The charge is keyed by order id, so its retries are safe (idempotent=True).
    client = ResilientClient(
        SERVICE, "payment", settings.payment_url, timeout=settings.payment_timeout_seconds
    )
    closers.append(client.aclose)
    return HttpPayments(client)


def _carts(settings: OrderSettings, closers: list[Closer]) -> Carts:
    client = ResilientClient(SERVICE, "cart", settings.cart_url)
    closers.append(client.aclose)
    return HttpCarts(client)


def _closing(closers: list[Closer]) -> Resource:
    @asynccontextmanager
    async def neighbours_lifetime(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for close in closers:
                await close()

    return neighbours_lifetime


def _running(runner: SagaRunner) -> Resource:
    """The saga runner; listed after the neighbours it calls, so it stops before them."""

    @asynccontextmanager
    async def saga_lifetime(app: FastAPI) -> AsyncIterator[None]:
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()

    return saga_lifetime


def main() -> None:
    run_service_cli(OrderSettings, serve_asgi(build_app), migrations_dir=MIGRATIONS)
