from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bazaar.contracts.generated import inventory_pb2, inventory_pb2_grpc
from bazaar.platform.grpc import create_grpc_server, mark_serving
from bazaar.services.gateway.bootstrap import build_app
from bazaar.services.gateway.settings import GatewaySettings
from bazaar.services.gateway.tests.fakes import (
    NO_INVENTORY,
    SHOP_URL,
    UPSTREAMS,
    ClientFactory,
    EchoUpstream,
    FakeInventory,
    FakeShop,
)
from bazaar.services.gateway.upstreams import TransportOverride
from bazaar.testing import TokenMinter


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture
def settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(home=tmp_path, environment="test", inventory_addr=NO_INVENTORY)


@pytest.fixture
def make_client(settings: GatewaySettings, minter: TokenMinter) -> ClientFactory:
    """A started gateway over the given upstream transports, and a client of it."""

    @asynccontextmanager
    async def started(
        transport: TransportOverride, *, settings_: GatewaySettings | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = build_app(
            settings_ or settings, transport=transport, token_verifier=minter.verifier()
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=SHOP_URL,
                headers={"Origin": SHOP_URL},  # what a browser sends with this site's forms
            ) as client,
        ):
            yield client

    return started


@pytest.fixture
def echo() -> dict[str, EchoUpstream]:
    return {name: EchoUpstream(name) for name in UPSTREAMS}


@pytest.fixture
async def api(
    make_client: ClientFactory, echo: dict[str, EchoUpstream]
) -> AsyncIterator[httpx.AsyncClient]:
    transports = {name: httpx.ASGITransport(app=app) for name, app in echo.items()}
    async with make_client(transports) as client:
        yield client


@pytest.fixture
def shop(minter: TokenMinter) -> FakeShop:
    shop = FakeShop(minter)
    shop.add_product("Teapot", 2499, category="kitchen")
    shop.add_product("Walnut cutting board", 3950, category="kitchen")
    shop.add_product("Linen apron", 1800, stock=0, category="textiles")
    shop.add_user("ada@example.com", "correct horse")
    shop.add_user("root@example.com", "admin password", admin=True)
    return shop


@pytest.fixture
async def store(make_client: ClientFactory, shop: FakeShop) -> AsyncIterator[httpx.AsyncClient]:
    transports = {name: httpx.ASGITransport(app=app) for name, app in shop.apps().items()}
    async with make_client(transports) as client:
        yield client


@pytest.fixture
async def inventory() -> AsyncIterator[tuple[FakeInventory, str]]:
    """A real grpc.aio server on loopback with the fake servicer and the health service."""
    name = inventory_pb2.DESCRIPTOR.services_by_name["Inventory"].full_name
    server, health = create_grpc_server("inventory-test", [name])
    fake = FakeInventory()
    inventory_pb2_grpc.add_InventoryServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await mark_serving(health, [name])
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)
