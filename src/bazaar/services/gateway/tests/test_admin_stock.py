from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bazaar.services.gateway.settings import GatewaySettings
from bazaar.services.gateway.tests.fakes import ClientFactory, EchoUpstream, FakeInventory
from bazaar.testing import TokenMinter

STOCK = "/api/admin/products/p1/stock"


@pytest.fixture
async def admin_api(
    make_client: ClientFactory,
    settings: GatewaySettings,
    echo: dict[str, EchoUpstream],
    inventory: tuple[FakeInventory, str],
) -> AsyncIterator[httpx.AsyncClient]:
    transports = {name: httpx.ASGITransport(app=app) for name, app in echo.items()}
    with_inventory = settings.model_copy(update={"inventory_addr": inventory[1]})
    async with make_client(transports, settings_=with_inventory) as client:
        yield client


@pytest.fixture
def admin(minter: TokenMinter) -> dict[str, str]:
    return minter.headers("root", roles=["customer", "admin"])


async def test_stock_management_needs_an_admin(
    admin_api: httpx.AsyncClient, minter: TokenMinter, inventory: tuple[FakeInventory, str]
) -> None:
    anonymous = await admin_api.put(STOCK, json={"delta": 3})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = await admin_api.put(
        STOCK, json={"delta": 3}, headers={"Authorization": "Bearer not.a.token"}
    )
    assert forged.status_code == 401
    customer = await admin_api.put(STOCK, json={"delta": 3}, headers=minter.headers("ada"))
    assert customer.status_code == 403
    assert (
        await admin_api.get("/api/admin/stock", headers=minter.headers("ada"))
    ).status_code == 403
    assert inventory[0].on_hand["p1"] == 5


async def test_an_admin_adjusts_stock_once_per_idempotency_key(
    admin_api: httpx.AsyncClient, admin: dict[str, str], inventory: tuple[FakeInventory, str]
) -> None:
    headers = {**admin, "Idempotency-Key": "restock-1"}
    first = await admin_api.put(STOCK, json={"delta": 10}, headers=headers)
    again = await admin_api.put(STOCK, json={"delta": 10}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == {
        "product_id": "p1",
        "on_hand": 15,
        "reserved": 2,
        "available": 13,
        "version": 1,
    }
    assert again.json() == first.json()
    assert inventory[0].on_hand["p1"] == 15


async def test_inventory_refusals_become_problems(
    admin_api: httpx.AsyncClient, admin: dict[str, str], inventory: tuple[FakeInventory, str]
) -> None:
    below_reserved = await admin_api.put(STOCK, json={"delta": -4}, headers=admin)
    assert below_reserved.status_code == 409
    assert below_reserved.json()["detail"] == "below the reserved units"
    unknown = await admin_api.put(
        "/api/admin/products/nope/stock", json={"delta": 1}, headers=admin
    )
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert inventory[0].on_hand["p1"] == 5


@pytest.mark.parametrize(
    "body",
    [{"delta": 0}, {"delta": "many"}, {"delta": 1.5}, {}, {"delta": 1, "extra": True}, [1]],
)
async def test_a_bad_adjustment_is_a_422_and_changes_nothing(
    admin_api: httpx.AsyncClient,
    admin: dict[str, str],
    inventory: tuple[FakeInventory, str],
    body: object,
) -> None:
    answer = await admin_api.put(STOCK, json=body, headers=admin)
    assert answer.status_code == 422
    assert answer.json()["detail"]
    assert inventory[0].on_hand["p1"] == 5
    assert inventory[0].version == 0


async def test_an_admin_reads_stock_levels(
    admin_api: httpx.AsyncClient, admin: dict[str, str], inventory: tuple[FakeInventory, str]
) -> None:
    inventory[0].on_hand["p2"] = 7
    every = await admin_api.get("/api/admin/stock", headers=admin)
    assert every.status_code == 200
    assert [level["product_id"] for level in every.json()["items"]] == ["p1", "p2"]
    one = await admin_api.get("/api/admin/stock?product_id=p2", headers=admin)
    assert one.json()["items"] == [
        {"product_id": "p2", "on_hand": 7, "reserved": 0, "available": 7, "version": 0}
    ]


async def test_inventory_down_is_a_503_problem(
    make_client: ClientFactory, echo: dict[str, EchoUpstream], admin: dict[str, str]
) -> None:
    transports = {name: httpx.ASGITransport(app=app) for name, app in echo.items()}
    async with make_client(transports) as client:  # inventory_addr: nothing listens there
        answer = await client.put(STOCK, json={"delta": 1}, headers=admin)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"]
