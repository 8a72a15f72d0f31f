"""The saga's spans: each step a span with its outcome, in the checkout's trace; a saga
resumed after a crash starts a trace of its own, linked back to the checkout's (whose
context was stored with the order)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bazaar.platform import telemetry
from bazaar.services.order.tests.fakes import FakeInventory, FakePayments
from bazaar.services.order.tests.support import Neighbours, running_shop
from bazaar.services.order.tests.test_saga import as_if_killed
from bazaar.testing import TokenMinter


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    telemetry.start_tracing("order", {}, exporter=exporter)
    yield exporter
    telemetry.stop_tracing()


def of_order(spans: InMemorySpanExporter, order_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if (s.attributes or {}).get("bazaar.order_id") == order_id
    ]


async def test_a_saga_resumed_after_a_crash_links_back_to_the_checkout(
    spans: InMemorySpanExporter, tmp_path: Path, database_url: str, minter: TokenMinter
) -> None:
    inventory, stuck = FakeInventory(), FakePayments()
    stuck.gate = asyncio.Event()  # never opens: the process "dies" during the charge
    first = Neighbours(inventory=inventory, payments=stuck)
    async with running_shop(tmp_path, database_url, minter, first) as shop:
        order_id = await shop.place("ann", ("p-tea", 2))
        await shop.until(order_id, lambda _: stuck.calls[("charge", order_id)] == 1)
    await as_if_killed(shop)
    checkout = next(
        s
        for s in of_order(spans, order_id)
        if s.kind is SpanKind.SERVER and s.name.startswith("POST")
    )
    reserve = next(s for s in of_order(spans, order_id) if s.name == "saga reserve")
    assert reserve.context.trace_id == checkout.context.trace_id
    assert (reserve.attributes or {})["bazaar.saga.outcome"] == "done"

    second = Neighbours(inventory=inventory, payments=FakePayments(), carts=first.carts)
    async with running_shop(tmp_path, database_url, minter, second) as shop:
        assert (await shop.final(order_id)).status == "paid"

    resumed = next(s for s in of_order(spans, order_id) if s.name == "saga resume")
    assert resumed.parent is None and resumed.context.trace_id != checkout.context.trace_id
    assert [link.context.span_id for link in resumed.links] == [checkout.context.span_id]
    steps = [
        (s.attributes or {}).get("bazaar.saga.step")
        for s in of_order(spans, order_id)
        if s.context.trace_id == resumed.context.trace_id and s.name != "saga resume"
    ]
    assert steps == ["reserve", "charge", "confirm"]
