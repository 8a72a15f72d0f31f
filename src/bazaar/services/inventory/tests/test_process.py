"""The process from outside: the CLI's seed, the ops app, and a real `serve` that keeps
answering with the broker down and stops cleanly on SIGTERM."""

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select

from bazaar.contracts.generated import inventory_pb2 as pb
from bazaar.contracts.generated.inventory_pb2_grpc import InventoryStub
from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.messaging_tables import outbox
from bazaar.platform.migrations import migrate
from bazaar.services.inventory.app import create_ops_app
from bazaar.services.inventory.bootstrap import MIGRATIONS, InventoryProcess, seed
from bazaar.services.inventory.settings import InventorySettings
from bazaar.testing import free_port

PRODUCTS = [
    {"id": "mug", "name": "Mug", "category": "kitchen", "price_cents": 1200, "stock": 25},
    {"id": "cup", "name": "Cup", "category": "kitchen", "price_cents": 800, "stock": 3},
]
FIRST_SEED = "inventory: stock set for 2 products, 0 already had stock"
SECOND_SEED = "inventory: stock set for 0 products, 2 already had stock"


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAZAAR_")}
    # Nothing listens on port 1: the broker is down for the whole test.
    env.update(BAZAAR_HOME=str(home), BAZAAR_BROKER_URL="nats://127.0.0.1:1", **extra)
    return env


async def start_cli(home: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bazaar.services.inventory",
        *args,
        env=service_env(home, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "products.json"
    path.write_text(json.dumps(PRODUCTS))
    return path


async def test_seed_sets_stock_once_and_emits_events(
    settings: InventorySettings, db: Database, seed_file: Path
) -> None:
    settings = settings.model_copy(update={"database_url": db.url})
    assert await seed(settings, seed_file) == FIRST_SEED
    assert await seed(settings, seed_file) == SECOND_SEED
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(outbox)) == 2


async def test_a_bad_seed_file_stops_with_a_clear_message(
    settings: InventorySettings, db: Database, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "mug", "stock": -5}]')
    with pytest.raises(SystemExit, match="stock must be an integer"):
        await seed(settings, bad)
    with pytest.raises(SystemExit, match=r"missing\.json"):
        await seed(settings, tmp_path / "missing.json")


async def test_the_ops_app_serves_health_readiness_and_metrics(
    inventory: InventoryProcess, stub: InventoryStub
) -> None:
    await stub.GetStock(pb.GetStockRequest())
    transport = httpx.ASGITransport(app=inventory.ops_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).json() == {"status": "ready"}
        metrics = (await http.get("/metrics")).text
        counter = 'bazaar_grpc_requests_total{code="OK",method="GetStock",service="inventory"}'
        assert counter in metrics
        assert (await http.get("/docs")).status_code == 404


async def test_readiness_fails_while_the_broker_is_unreachable(db: Database) -> None:
    app = create_ops_app(db, Bus("nats://127.0.0.1:1", "inventory"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inventory") as http:
        answer = await http.get("/readyz")
    assert answer.status_code == 503
    assert "broker" in answer.json()["detail"]


Served = tuple[asyncio.subprocess.Process, int, int]


@pytest.fixture
async def served(tmp_path: Path, seed_file: Path) -> AsyncIterator[Served]:
    """`python -m bazaar.services.inventory serve` on a seeded database: (process, port,
    ops port). Seeded through the CLI, so `seed FILE` is exercised end to end too."""
    home = tmp_path / "home"
    await asyncio.to_thread(migrate, MIGRATIONS, InventorySettings(home=home).database_url)
    seeding = await start_cli(home, "seed", str(seed_file))
    out, err = await asyncio.wait_for(seeding.communicate(), 30)
    assert out.decode().strip() == FIRST_SEED, err.decode()
    port, ops_port = free_port(), free_port()
    process = await start_cli(home, "serve", BAZAAR_PORT=str(port), BAZAAR_OPS_PORT=str(ops_port))
    try:
        yield process, port, ops_port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(15):
        while True:
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)


async def test_serve_answers_with_the_broker_down_and_stops_on_sigterm(served: Served) -> None:
    process, port, ops_port = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await wait_until_serving(channel)
        stub = InventoryStub(channel)
        request = pb.ReserveRequest(order_id="o-1", lines=[pb.Line(product_id="mug", qty=2)])
        answer = await stub.Reserve(request, timeout=5)
        assert answer.outcome == pb.ReserveResponse.RESERVED
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops_port}") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 503  # no broker

    process.send_signal(signal.SIGTERM)
    _, log = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, log.decode()[-2000:]
