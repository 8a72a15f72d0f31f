"""The SPEC's story on the cluster topology, the load balancer spreading calls (gRPC per
call), a hung replica shown "not ready" and left out, and more buyers than units racing
across two order and two inventory replicas."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request

import httpx
import pytest

from bazaar.runner.platform import Platform
from bazaar.runner.supervisor import State
from tests.faults.promises import Batch, one_mail_per_order
from tests.faults.shop import Shopper, admin, persist, products, set_available, stock_levels

from .shopping import buy, checker_findings, shop_rounds

pytestmark = [pytest.mark.system, pytest.mark.cluster, pytest.mark.timeout(600)]

SHOPPERS = 30


async def test_the_story_on_the_cluster(
    cluster: Platform, api: httpx.AsyncClient, shoppers: list[Shopper]
) -> None:
    shopper = shoppers[0]
    product = (await products(api))[0]
    before = product["stock"]
    batch = Batch()
    order = await buy(api, shopper, {product["id"]: 2}, batch)
    assert order["status"] == "paid", order
    # The order's event stream, through the gateway and whichever order replica serves it.
    events = await api.get(f"/api/orders/{order['id']}/events", headers=shopper.headers)
    assert events.status_code == 200 and '"paid"' in events.text, events.text
    await one_mail_per_order(cluster.home.mail, batch)

    async def stock() -> int:
        response = await persist(lambda: api.get(f"/api/products/{product['id']}"))
        return int(response.json()["stock"])

    for _ in range(150):  # the catalog's read model follows stock.changed
        if await stock() == before - 2:
            break
        await asyncio.sleep(0.2)
    assert await stock() == before - 2


def envoy_requests(cluster: Platform) -> dict[str, list[int]]:
    """Per balanced service, the requests each replica answered (Envoy's admin)."""
    admin_port = cluster.ports["lb"]["admin"]
    url = f"http://127.0.0.1:{admin_port}/clusters?format=json"
    with urllib.request.urlopen(url, timeout=5) as answer:  # loopback
        statuses = json.load(answer)["cluster_statuses"]
    counts: dict[str, list[int]] = {}
    for status in statuses:
        for host in status.get("host_statuses", []):
            total = next(
                (int(s.get("value", 0)) for s in host["stats"] if s["name"] == "rq_total"), 0
            )
            counts.setdefault(status["name"], []).append(total)
    return counts


async def test_every_replica_takes_calls_grpc_included(
    cluster: Platform, api: httpx.AsyncClient, shoppers: list[Shopper]
) -> None:
    product = (await products(api))[1]
    batch = Batch()
    await shop_rounds(api, shoppers[:6], {product["id"]: 1}, batch, rounds=1)
    counts = envoy_requests(cluster)
    for service in ("gateway", "order", "inventory", "cart", "catalog", "payment"):
        assert len(counts[service]) == 2 and all(n > 0 for n in counts[service]), counts


async def test_a_hung_replica_is_not_ready_and_gets_no_calls(
    cluster: Platform, api: httpx.AsyncClient
) -> None:
    cluster.kill("catalog-1", signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while cluster.state("catalog-1") is not State.NOT_READY:
            assert time.monotonic() < deadline, "a stopped replica still shows ready"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # Envoy's own checks (1 s apart, 2 failures)
        answers = [(await api.get("/api/products")).status_code for _ in range(20)]
        assert answers == [200] * 20
    finally:
        cluster.kill("catalog-1", signal.SIGCONT)
    assert cluster.wait_ready("catalog-1", 15)


async def test_more_buyers_than_units_sell_exactly_the_stock(
    cluster: Platform, api: httpx.AsyncClient, shoppers: list[Shopper]
) -> None:
    units = 8
    headers = await admin(api)
    product = (await products(api))[2]
    await set_available(api, headers, product["id"], units)
    batch = Batch()
    await shop_rounds(api, shoppers, {product["id"]: 1}, batch, rounds=1)
    statuses = [order["status"] for order in batch.final.values()]
    reasons = {order["reason"] for order in batch.final.values() if order["status"] != "paid"}
    assert statuses.count("paid") == units, batch.statuses()
    assert reasons == {"out_of_stock"}, batch.statuses()
    level = (await stock_levels(api, headers, [product["id"]]))[product["id"]]
    assert (level.available, level.reserved) == (0, 0), level
    await one_mail_per_order(cluster.home.mail, batch)
    assert checker_findings(cluster) == []
