"""What the saga tells Prometheus: each step's duration by outcome, the age of the oldest
pending order and the deadline it is held to (the stuck-saga alert compares the two)."""

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from bazaar.services.order.tests.support import Shop


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(condition: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_each_step_is_timed_by_its_outcome(shop: Shop) -> None:
    def timed(step: str, outcome: str) -> float:
        return sample("bazaar_saga_step_seconds_count", step=step, outcome=outcome)

    before = {step: timed(step, "done") for step in ("reserve", "charge", "confirm")}
    shop.neighbours.payments.mode = "decline"
    declined_before = timed("charge", "refused")
    await shop.final(await shop.place("ann", ("p-tea", 1)))
    shop.neighbours.payments.mode = "ok"
    await shop.final(await shop.place("bob", ("p-tea", 1)))
    assert {step: timed(step, "done") - before[step] for step in before} == {
        "reserve": 2,
        "charge": 1,
        "confirm": 1,
    }
    assert timed("charge", "refused") - declined_before == 1


# A deadline no loaded machine reaches: the order waits while the processor is down.
@pytest.mark.parametrize(
    "settings_overrides",
    [{"payment_deadline_seconds": 600, "payment_refund_grace_seconds": 5}],
)
async def test_the_oldest_pending_order_is_measured_until_it_is_final(shop: Shop) -> None:
    assert sample("bazaar_saga_deadline_seconds") == 605
    payments = shop.neighbours.payments
    payments.mode = "down"
    order_id = await shop.place("ann", ("p-tea", 1))
    await eventually(lambda: sample("bazaar_saga_oldest_pending_seconds") > 0)
    payments.mode = "ok"
    await shop.final(order_id)
    await eventually(lambda: sample("bazaar_saga_oldest_pending_seconds") == 0)
