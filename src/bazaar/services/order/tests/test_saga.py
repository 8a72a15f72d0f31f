"""The checkout saga end to end, over fakes of inventory and payment that can fail."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from bazaar.platform.outbox import OutboxRelay
from bazaar.services.order.domain import Step
from bazaar.services.order.ports import Commitment
from bazaar.services.order.store import orders
from bazaar.services.order.tests.fakes import FakeInventory, FakePayments
from bazaar.services.order.tests.support import Neighbours, Shop, running_shop
from bazaar.testing import TokenMinter


async def test_out_of_stock_cancels_without_charging(shop: Shop) -> None:
    shop.neighbours.inventory.stock["p-pot"] = 1
    order_id = await shop.place("ann", ("p-tea", 1), ("p-pot", 2))
    order = await shop.final(order_id)
    assert (order.status, order.reason) == ("cancelled", "out_of_stock")
    assert ("charge", order_id) not in shop.neighbours.payments.calls
    assert shop.neighbours.inventory.stock["p-tea"] == 100  # nothing was held
    assert await shop.events(order_id) == ["order.created", "order.cancelled"]
    assert await shop.event_data(order_id, "order.cancelled") == {
        "order_id": order_id,
        "user_id": "ann",
        "email": "ann@example.com",
        "reason": "out_of_stock",
    }


async def test_a_declined_payment_releases_the_stock_and_cancels(shop: Shop) -> None:
    shop.neighbours.payments.mode = "decline"
    order_id = await shop.place("ann", ("p-mug", 3))
    order = await shop.final(order_id)
    assert (order.status, order.reason) == ("cancelled", "payment_declined")
    assert shop.neighbours.inventory.state[order_id] == "released"
    assert shop.neighbours.inventory.stock["p-mug"] == 100
    assert ("refund", order_id) not in shop.neighbours.payments.calls
    assert await shop.events(order_id) == ["order.created", "order.cancelled"]


# A deadline no loaded machine reaches: the payment is back before it, whatever the clock.
@pytest.mark.parametrize("settings_overrides", [{"payment_deadline_seconds": 600}])
async def test_payment_back_before_the_deadline_gets_the_order_paid(shop: Shop) -> None:
    payments = shop.neighbours.payments
    payments.mode = "down"
    order_id = await shop.place("ann", ("p-tea", 1))
    await shop.until(order_id, lambda _: payments.calls[("charge", order_id)] >= 3)
    pending = await shop.order(order_id)
    assert (pending.status, pending.saga.step) == ("pending", Step.CHARGE)
    assert pending.saga.attempts >= 2  # the retries are persisted
    payments.mode = "ok"
    order = await shop.final(order_id)
    assert order.status == "paid"
    assert await shop.events(order_id) == ["order.created", "order.paid"]


@pytest.mark.parametrize("settings_overrides", [{"payment_deadline_seconds": 0.2}])
async def test_a_charge_that_landed_unheard_is_refunded_at_the_deadline(shop: Shop) -> None:
    payments = shop.neighbours.payments
    payments.mode = "lost"  # the processor charges, but its answer never arrives
    order_id = await shop.place("ann", ("p-pot", 1))
    order = await shop.final(order_id)
    assert (order.status, order.reason) == ("cancelled", "payment_unavailable")
    assert payments.charges[order_id] == "refunded"
    assert shop.neighbours.inventory.state[order_id] == "released"
    assert shop.neighbours.inventory.stock["p-pot"] == 100
    assert await shop.events(order_id) == ["order.created", "order.cancelled"]


@pytest.mark.parametrize("settings_overrides", [{"payment_deadline_seconds": 0.2}])
async def test_a_payment_outage_past_the_deadline_cancels_and_releases(shop: Shop) -> None:
    payments = shop.neighbours.payments
    payments.mode = "outage"  # stays so: the order must not wait for the processor
    order_id = await shop.place("ann", ("p-pot", 1))
    order = await shop.final(order_id)
    assert (order.status, order.reason) == ("cancelled", "payment_unavailable")
    assert payments.calls[("charge", order_id)] >= 2
    assert payments.charges[order_id] == "voided"  # nothing taken, and never will be
    assert shop.neighbours.inventory.state[order_id] == "released"
    assert shop.neighbours.inventory.stock["p-pot"] == 100
    assert await shop.events(order_id) == ["order.created", "order.cancelled"]


@pytest.mark.parametrize("settings_overrides", [{"payment_deadline_seconds": 0.2}])
async def test_payment_down_past_the_deadline_cancels_once_refund_is_answered(
    shop: Shop,
) -> None:
    payments = shop.neighbours.payments
    payments.mode = "down"  # unreachable: whether it charged cannot be known
    order_id = await shop.place("ann", ("p-pot", 1))
    # Past the deadline the saga asks for a refund, and keeps asking while payment is down:
    # cancelling before knowing whether a charge exists could leave a charge behind.
    waiting = await shop.until(order_id, lambda _: payments.calls[("refund", order_id)] >= 2)
    assert (waiting.status, waiting.saga.step) == ("pending", Step.REFUND)
    assert shop.neighbours.inventory.state[order_id] == "reserved"
    payments.mode = "ok"
    order = await shop.final(order_id)
    assert (order.status, order.reason) == ("cancelled", "payment_unavailable")
    assert payments.charges[order_id] == "voided"  # nothing was ever charged
    assert shop.neighbours.inventory.state[order_id] == "released"
    assert await shop.events(order_id) == ["order.created", "order.cancelled"]


async def test_inventory_outages_are_waited_out(shop: Shop) -> None:
    inventory, payments = shop.neighbours.inventory, shop.neighbours.payments
    payments.gate = asyncio.Event()
    inventory.down = True
    order_id = await shop.place("ann", ("p-tea", 1))
    await shop.until(order_id, lambda _: inventory.calls[("reserve", order_id)] >= 3)
    inventory.down = False
    await shop.until(order_id, lambda _: payments.calls[("charge", order_id)] == 1)
    inventory.down = True  # down again before the commit
    payments.gate.set()
    await shop.until(order_id, lambda _: inventory.calls[("commit", order_id)] >= 2)
    assert (await shop.order(order_id)).status == "pending"
    inventory.down = False
    assert (await shop.final(order_id)).status == "paid"
    assert inventory.state[order_id] == "committed"
    assert shop.neighbours.payments.calls[("charge", order_id)] == 1


async def test_a_reservation_lost_before_commit_is_refunded_and_cancelled(shop: Shop) -> None:
    payments = shop.neighbours.payments
    payments.gate = asyncio.Event()
    order_id = await shop.place("ann", ("p-mug", 1))
    await shop.until(order_id, lambda _: payments.calls[("charge", order_id)] == 1)
    shop.neighbours.inventory.state[order_id] = "released"  # e.g. expired by inventory
    payments.gate.set()
    order = await shop.final(order_id)
    assert (order.status, order.reason) == ("cancelled", "out_of_stock")
    assert payments.charges[order_id] == "refunded"


async def test_concurrent_sagas_never_oversell(shop: Shop) -> None:
    shop.neighbours.inventory.stock["p-pot"] = 5
    users = [f"user-{n}" for n in range(12)]
    for user in users:
        shop.neighbours.carts.put(user, ("p-pot", 1))
    answers = await asyncio.gather(*(shop.checkout(user) for user in users))
    order_ids = [a.json()["order_id"] for a in answers]
    orders = await asyncio.gather(*(shop.final(order_id) for order_id in order_ids))
    assert sorted(o.status for o in orders) == ["cancelled"] * 7 + ["paid"] * 5
    assert {o.reason for o in orders if o.status == "cancelled"} == {"out_of_stock"}
    assert shop.neighbours.inventory.stock["p-pot"] == 0
    for order in orders:
        assert shop.neighbours.payments.calls[("charge", order.id)] == (
            1 if order.status == "paid" else 0
        )


async def as_if_killed(shop: Shop) -> None:
    """What a kill -9 leaves behind: every order held by a runner that no longer exists.
    On SQLite (one process) the next runner takes them over at once; on PostgreSQL
    (replicas) it waits for the lease to run out."""
    held = timedelta(hours=1) if shop.db.is_sqlite else timedelta(seconds=0.5)
    async with shop.db.transaction() as session:
        await session.execute(update(orders).values(lease_until=datetime.now(UTC) + held))


async def test_a_saga_interrupted_after_reserve_resumes_on_a_fresh_app(
    tmp_path: Path, database_url: str, minter: TokenMinter
) -> None:
    inventory = FakeInventory()
    stuck = FakePayments()
    stuck.gate = asyncio.Event()  # never opens: the process "dies" during the charge
    first = Neighbours(inventory=inventory, payments=stuck)
    async with running_shop(tmp_path, database_url, minter, first) as shop:
        order_id = await shop.place("ann", ("p-tea", 2))
        await shop.until(order_id, lambda _: stuck.calls[("charge", order_id)] == 1)
    await as_if_killed(shop)

    payments = FakePayments()
    second = Neighbours(inventory=inventory, payments=payments, carts=first.carts)
    async with running_shop(tmp_path, database_url, minter, second) as shop:
        order = await shop.final(order_id)
        assert order.status == "paid"
        assert await shop.events(order_id) == ["order.created", "order.paid"]
    # Reserved -> charging was not written (see domain.needs_recording): the resumed saga
    # redoes the reserve, which answers its first outcome again and holds nothing more.
    assert inventory.calls[("reserve", order_id)] == 2
    assert inventory.calls[("commit", order_id)] == 1
    assert inventory.stock["p-tea"] == 98
    assert payments.charges == {order_id: "captured"}


class CommitNeverAnswers(FakeInventory):
    async def commit(self, order_id: str) -> Commitment:
        self.calls[("commit", order_id)] += 1
        await asyncio.Event().wait()  # the process "dies" here
        raise AssertionError("unreachable")


async def test_a_saga_interrupted_after_the_charge_takes_the_money_once(
    tmp_path: Path, database_url: str, minter: TokenMinter
) -> None:
    stuck, payments = CommitNeverAnswers(), FakePayments()
    first = Neighbours(inventory=stuck, payments=payments)
    async with running_shop(tmp_path, database_url, minter, first) as shop:
        order_id = await shop.place("ann", ("p-mug", 1))
        await shop.until(order_id, lambda _: stuck.calls[("commit", order_id)] == 1)
        assert (await shop.order(order_id)).saga.step is Step.RESERVE  # nothing written yet
    await as_if_killed(shop)

    inventory = FakeInventory()
    inventory.state, inventory.stock = stuck.state, stuck.stock  # the same inventory
    second = Neighbours(inventory=inventory, payments=payments, carts=first.carts)
    async with running_shop(tmp_path, database_url, minter, second) as shop:
        order = await shop.final(order_id)
        assert order.status == "paid"
        assert await shop.events(order_id) == ["order.created", "order.paid"]
    assert payments.calls[("charge", order_id)] == 2  # asked again, with the same key:
    assert payments.charges == {order_id: "captured"}  # charged once
    assert inventory.state[order_id] == "committed"
    assert inventory.stock["p-mug"] == 99


# A lease half spent is renewed by a write: a long one keeps a slow machine from adding one.
@pytest.mark.parametrize("settings_overrides", [{"saga_lease_seconds": 600}])
async def test_a_new_order_runs_its_saga_with_a_single_write(shop: Shop) -> None:
    order_id = await shop.place("ann", ("p-tea", 1))
    order = await shop.final(order_id)
    # Inserted already leased to the runner at version 0, written once more when paid:
    # no claim, and no write between the steps that followed each other at once.
    assert (order.status, order.version) == ("paid", 1)


@pytest.mark.parametrize("settings_overrides", [{"saga_concurrency": 1, "saga_lease_seconds": 600}])
async def test_orders_that_find_every_saga_slot_taken_are_claimed_later(shop: Shop) -> None:
    payments = shop.neighbours.payments
    payments.gate = asyncio.Event()
    first = await shop.place("ann", ("p-tea", 1))
    await shop.until(first, lambda _: payments.calls[("charge", first)] == 1)
    later = [await shop.place(user, ("p-tea", 1)) for user in ("bob", "cyd")]
    payments.gate.set()
    orders_now = [await shop.final(order_id) for order_id in (first, *later)]
    assert [o.status for o in orders_now] == ["paid"] * 3
    # The first started at once; the others waited for the slot and were claimed (a
    # claim is a write too).
    assert [o.version for o in orders_now] == [1, 2, 2]


async def test_the_outbox_relay_publishes_the_events(shop: Shop) -> None:
    order_id = await shop.place("ann", ("p-tea", 1))
    await shop.final(order_id)
    relay = OutboxRelay(shop.db, shop.bus, "order")  # not started: it only counts
    for _ in range(200):  # the app's relay was woken by the commits; give it a moment
        if await relay.pending() == 0:
            break
        await asyncio.sleep(0.01)
    assert await relay.pending() == 0
