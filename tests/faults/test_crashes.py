"""Processes die while checkouts are in flight, and nothing is lost or doubled: every
order reaches a final state, nobody is charged twice or left charged for a cancelled
order, nobody gets two mails for one order, and every event reached its consumers
(order.created the cart, order.paid the mailbox, stock.changed the catalog).

One platform and SHOPPERS shoppers for the module, each checking out several times per
batch. The kill -9 test is one batch of 200 checkouts with a kill of every process type
spread over it (each at a random number of returned checkouts, so sagas are mid-way, and
later kills overlap the recoveries of earlier ones). The broker restart and the mail
server outage get a batch of 100 each. BAZAAR_FAULT_SEED replays a schedule.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

import httpx
import pytest

from bazaar.runner.platform import Platform
from bazaar.runner.supervisor import State
from bazaar.testing.platform_broker import PLATFORM_BROKERS, PlatformBroker

from .promises import (
    charged_once_or_not_at_all,
    checker_findings,
    created_reached_the_cart,
    one_mail_per_order,
    stock_accounts_for,
    summary,
)
from .shop import (
    Batch,
    Level,
    Shopper,
    admin,
    products,
    run_batch,
    set_available,
    set_carts,
    stock_levels,
)

pytestmark = pytest.mark.system

SHOPPERS = 50
ROUNDS = 4  # checkouts per shopper in the kill -9 batch: SHOPPERS * ROUNDS = 200
SHORT_ROUNDS = 2  # in the batches of the broker restart and the mail outage: 100
VICTIMS = ("order", "inventory", "payment", "catalog", "cart", "notification", "gateway", "nats")
SEED = int(os.environ.get("BAZAAR_FAULT_SEED", random.randrange(1_000_000)))
# The kill -9 and the restart are done to whichever broker the platform runs on ("nats"
# stands for it in VICTIMS).
BROKERS = PLATFORM_BROKERS


async def ready_to_buy(
    api: httpx.AsyncClient, shoppers: list[Shopper], chance: random.Random
) -> tuple[dict[str, int], dict[str, str], dict[str, Level]]:
    """Two products, one of each in every cart, and stock for every round and then some;
    the lines, admin headers and the stock before."""
    admin_headers = await admin(api)
    lines = {p["id"]: 1 for p in chance.sample(await products(api), 2)}
    for product_id in lines:
        await set_available(api, admin_headers, product_id, 2 * len(shoppers) * ROUNDS)
    await set_carts(api, shoppers, lines)
    return lines, admin_headers, await stock_levels(api, admin_headers, lines)


async def nothing_lost_nor_doubled(
    platform: Platform,
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
    shoppers: list[Shopper],
    batch: Batch,
    admin_headers: dict[str, str],
    before: dict[str, Level],
) -> None:
    assert len(batch.final) == batch.submitted == batch.returned
    await stock_accounts_for(api, admin_headers, before, batch)
    await charged_once_or_not_at_all(payment, batch)
    await one_mail_per_order(platform.home.mail, batch)
    await created_reached_the_cart(platform.home.root, batch)
    assert checker_findings(platform.home.root) == []


def restarts(platform: Platform) -> dict[str, int]:
    return {s.name: s.restarts for s in platform.snapshots()}


async def all_ready(platform: Platform, names: list[str]) -> None:
    for name in names:
        ready = await asyncio.to_thread(platform.wait_ready, name, 60.0)
        assert ready, f"{name} is {platform.state(name)}:\n{platform.log_tail(name)}"


@pytest.mark.timeout(240)
async def test_kill_9_every_process_type_mid_batch(
    platform: Platform,
    broker: PlatformBroker,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    chance = random.Random(SEED)
    lines, admin_headers, before = await ready_to_buy(api, shoppers, chance)
    restarts_before = restarts(platform)
    # Each victim dies once the batch has this many checkouts back (distinct numbers).
    batch_size = SHOPPERS * ROUNDS
    moments = sorted(chance.sample(range(batch_size // 20, batch_size * 9 // 10), len(VICTIMS)))
    schedule = list(zip(moments, chance.sample(VICTIMS, len(VICTIMS)), strict=True))
    kills: list[dict[str, Any]] = []

    async def strike(batch: Batch) -> None:
        while len(kills) < len(schedule) and batch.returned >= schedule[len(kills)][0]:
            victim = schedule[len(kills)][1]
            kills.append({"victim": victim, "at": time.monotonic(), "in_flight": batch.in_flight})
            broker.kill() if victim == "nats" else platform.kill(victim)

    batch = await run_batch(
        api, platform.home.root, shoppers, lines, rounds=ROUNDS, after_each=strike, patience=180
    )

    assert len(kills) == len(VICTIMS), f"only {kills} before the batch ended"
    assert batch.returned == SHOPPERS * ROUNDS
    await all_ready(platform, [v for v in VICTIMS if v != "nats" or broker.kind == "nats"])
    assert await broker.ready(), f"{broker.kind} did not come back"
    restarted = {name: count - restarts_before[name] for name, count in restarts(platform).items()}
    first = kills[0]["at"]
    print(
        "\n"
        + summary(
            f"kill -9 x{len(kills)} on {broker.kind} (seed {SEED})",
            batch,
            fault_at=first,
            in_flight=kills[0]["in_flight"],
        )
        + "\n  kills: "
        + ", ".join(
            f"{k['victim']}@+{k['at'] - first:.1f}s({k['in_flight']} in flight)" for k in kills
        )
        + f"\n  restarts: {restarted}"
    )
    # Each victim came back once; nothing else crashed because a neighbour died.
    assert restarted == {name: int(name in VICTIMS) for name in restarted}, restarted
    await nothing_lost_nor_doubled(platform, api, payment, shoppers, batch, admin_headers, before)
    assert all(s.state is State.READY for s in platform.snapshots()), platform.snapshots()


@pytest.mark.timeout(180)
async def test_broker_restart_mid_batch_loses_no_event(
    platform: Platform,
    broker: PlatformBroker,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    chance = random.Random(SEED + 1)
    lines, admin_headers, before = await ready_to_buy(api, shoppers, chance)
    moment = chance.randrange(SHOPPERS * SHORT_ROUNDS // 10, SHOPPERS * SHORT_ROUNDS // 2)
    restart: dict[str, Any] = {}

    async def restart_nats(batch: Batch) -> None:
        if batch.returned >= moment and not restart:
            restart.update(at=time.monotonic(), in_flight=batch.in_flight)
            broker.restart()  # SIGTERM, and up again at once

    batch = await run_batch(
        api, platform.home.root, shoppers, lines, rounds=SHORT_ROUNDS, after_each=restart_nats
    )

    assert restart, "the batch ended before the restart"
    assert batch.returned == SHOPPERS * SHORT_ROUNDS
    assert await broker.ready(), f"{broker.kind} did not come back"
    print(
        "\n"
        + summary(
            f"{broker.kind} restart (seed {SEED})",
            batch,
            fault_at=restart["at"],
            in_flight=restart["in_flight"],
        )
    )
    await nothing_lost_nor_doubled(platform, api, payment, shoppers, batch, admin_headers, before)


MAIL_OUTAGE = 20.0


@pytest.mark.timeout(180)
async def test_a_mail_server_outage_delays_mail_but_loses_none(
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    chance = random.Random(SEED + 2)
    lines, admin_headers, before = await ready_to_buy(api, shoppers, chance)
    moment = chance.randrange(SHOPPERS * SHORT_ROUNDS // 10, SHOPPERS * SHORT_ROUNDS // 4)
    outage: dict[str, Any] = {}

    async def mail_server_down(batch: Batch) -> None:
        if batch.returned >= moment and not outage:
            outage.update(at=time.monotonic(), in_flight=batch.in_flight)
            await asyncio.to_thread(platform.stop_process, "smtp")

    batch = await run_batch(
        api,
        platform.home.root,
        shoppers,
        lines,
        rounds=SHORT_ROUNDS,
        after_each=mail_server_down,
    )
    await asyncio.sleep(max(0.0, outage["at"] + MAIL_OUTAGE - time.monotonic()))
    platform.start_process("smtp")
    await all_ready(platform, ["smtp"])
    assert batch.returned == SHOPPERS * SHORT_ROUNDS

    print(
        "\n"
        + summary(
            f"smtp down {MAIL_OUTAGE:.0f} s (seed {SEED})",
            batch,
            fault_at=outage["at"],
            in_flight=outage["in_flight"],
        )
    )
    await nothing_lost_nor_doubled(platform, api, payment, shoppers, batch, admin_headers, before)
