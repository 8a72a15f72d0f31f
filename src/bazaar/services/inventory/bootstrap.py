"""The composition root: settings -> database, bus, outbox relay, service, gRPC server and
ops app. Tests pass their own `db` and `bus`; `__main__` passes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from fastapi import FastAPI

from bazaar.contracts.generated import inventory_pb2_grpc
from bazaar.platform import serving
from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli
from bazaar.platform.db import Database
from bazaar.platform.grpc import create_grpc_server, mark_serving
from bazaar.platform.logs import get_logger
from bazaar.platform.outbox import OutboxRelay
from bazaar.platform.serving import asgi_server
from bazaar.services.inventory.app import SERVICE_FULL_NAME, InventoryServicer, create_ops_app
from bazaar.services.inventory.domain import InvalidRequest, seed_command
from bazaar.services.inventory.handlers import SERVICE, InventoryService
from bazaar.services.inventory.settings import InventorySettings

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class InventoryProcess:
    """Everything the service runs; `start()` serves gRPC, `stop()` drains and closes."""

    settings: InventorySettings
    db: Database
    bus: Bus
    relay: OutboxRelay
    service: InventoryService
    server: grpc.aio.Server
    health: Any
    ops_app: FastAPI
    port: int = 0
    _bus_start: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        address = f"{self.settings.host}:{self.settings.port}"
        self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise RuntimeError(f"cannot listen on {address}")
        # The broker may come up later than we do: the outbox keeps the events meanwhile,
        # so gRPC serves at once and the bus connects in the background.
        self._bus_start = asyncio.create_task(self.bus.start(), name="inventory-bus-start")
        self.relay.start()
        await self.server.start()
        await mark_serving(self.health, [SERVICE_FULL_NAME])
        log.info("inventory serving gRPC", address=f"{self.settings.host}:{self.port}")

    async def stop(self) -> None:
        # Health answers NOT_SERVING first, so balancers stop sending before we drain.
        draining = self.health.enter_graceful_shutdown()
        if inspect.isawaitable(draining):
            await draining
        await self.server.stop(self.settings.shutdown_grace_seconds)
        await self.relay.stop()
        if self._bus_start is not None and not self._bus_start.done():
            self._bus_start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._bus_start
        await self.bus.stop()
        await self.db.dispose()
        log.info("inventory stopped")


def build_inventory(
    settings: InventorySettings, *, db: Database | None = None, bus: Bus | None = None
) -> InventoryProcess:
    db = db or Database(settings.database_url)
    bus = bus or Bus(settings.broker_url, SERVICE)
    relay = OutboxRelay(db, bus, SERVICE)  # publishes after every commit that added events
    service = InventoryService(db)
    server, health = create_grpc_server(SERVICE, [SERVICE_FULL_NAME])
    inventory_pb2_grpc.add_InventoryServicer_to_server(InventoryServicer(service), server)
    return InventoryProcess(
        settings=settings,
        db=db,
        bus=bus,
        relay=relay,
        service=service,
        server=server,
        health=health,
        ops_app=create_ops_app(db, bus),
    )


def serve(settings: InventorySettings) -> None:
    """Serve gRPC and the ops app until SIGTERM/SIGINT, then stop gracefully."""
    serving.run(_serve_until_stopped(settings), settings)


async def _serve_until_stopped(settings: InventorySettings) -> None:
    process = build_inventory(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    ops = asgi_server(process.ops_app, settings.host, settings.ops_port)
    await process.start()
    ops_task = asyncio.create_task(ops.serve(), name="inventory-ops-http")
    stop_task = asyncio.create_task(stopping.wait())
    try:
        # uvicorn catches the signal itself while it serves and then returns: either way
        # one of the two finishes first.
        await asyncio.wait({ops_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("inventory stopping")
        ops.should_exit = True
        stop_task.cancel()
        await process.stop()
        await ops_task


async def seed(settings: InventorySettings, file: Path) -> str:
    """Set the stock of products that have none yet, from a JSON list of products."""
    try:
        products = json.loads(await asyncio.to_thread(file.read_text, encoding="utf-8"))
        command = seed_command(products)
    except (OSError, ValueError, InvalidRequest) as exc:
        raise SystemExit(f"inventory seed: {file}: {exc}") from None
    db = Database(settings.database_url)
    try:
        summary = await InventoryService(db).seed(command)
    finally:
        await db.dispose()
    return (
        f"inventory: stock set for {summary.created} products, {summary.skipped} already had stock"
    )


def main() -> None:
    run_service_cli(InventorySettings, serve, migrations_dir=MIGRATIONS, seed=seed)
