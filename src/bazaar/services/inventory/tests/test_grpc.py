"""The service through its contract: a real grpc.aio server on a free loopback port, a
real SQLite database, the bus in memory."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import select

from bazaar.contracts.generated import inventory_pb2 as pb
from bazaar.contracts.generated.inventory_pb2_grpc import InventoryStub
from bazaar.platform.db import Database
from bazaar.platform.messaging_tables import outbox
from bazaar.services.inventory.bootstrap import InventoryProcess
from bazaar.services.inventory.tests.support import Published

Seed = Callable[..., Awaitable[None]]
RESERVED = pb.ReserveResponse.RESERVED
OUT_OF_STOCK = pb.ReserveResponse.OUT_OF_STOCK
CONTRACTS = Path(__file__).resolve().parents[5] / "contracts"


def reserve(order_id: str, **lines: int) -> pb.ReserveRequest:
    return pb.ReserveRequest(
        order_id=order_id, lines=[pb.Line(product_id=p, qty=q) for p, q in lines.items()]
    )


async def levels(stub: InventoryStub, *product_ids: str) -> dict[str, tuple[int, int, int]]:
    """product_id -> (on_hand, reserved, version)"""
    answer = await stub.GetStock(pb.GetStockRequest(product_ids=product_ids))
    return {s.product_id: (s.on_hand, s.reserved, s.version) for s in answer.levels}


async def outbox_events(db: Database) -> list[dict[str, Any]]:
    async with db.sessions() as session:
        rows = await session.execute(select(outbox.c.envelope).order_by(outbox.c.seq))
        return [envelope for (envelope,) in rows]


async def test_health_answers_serving_and_reflection_lists_the_service(
    channel: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "bazaar.inventory.v1.Inventory"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names = {
        service.name
        async for answer in reflection.ServerReflectionInfo(iter([request]))
        for service in answer.list_services_response.service
    }
    assert "bazaar.inventory.v1.Inventory" in names


async def test_reserve_then_commit_sells_the_units(stub: InventoryStub, stock: Seed) -> None:
    await stock(p1=5, p2=3)
    answer = await stub.Reserve(reserve("o-1", p1=2, p2=3))
    assert answer.outcome == RESERVED and not answer.short_product_ids
    assert await levels(stub, "p1", "p2") == {"p1": (5, 2, 2), "p2": (3, 3, 2)}

    status = await stub.Commit(pb.OrderRef(order_id="o-1"))
    assert status == pb.ReservationStatus(order_id="o-1", state=pb.ReservationStatus.COMMITTED)
    assert await levels(stub, "p1", "p2") == {"p1": (3, 0, 3), "p2": (0, 0, 3)}

    again = await stub.Commit(pb.OrderRef(order_id="o-1"))
    assert again.state == pb.ReservationStatus.COMMITTED
    assert await levels(stub, "p1", "p2") == {"p1": (3, 0, 3), "p2": (0, 0, 3)}

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Release(pb.OrderRef(order_id="o-1"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "committed" in (refused.value.details() or "")


async def test_release_gives_the_units_back_once(stub: InventoryStub, stock: Seed) -> None:
    await stock(p1=5)
    await stub.Reserve(reserve("o-1", p1=4))
    for _ in range(2):
        status = await stub.Release(pb.OrderRef(order_id="o-1"))
        assert status.state == pb.ReservationStatus.RELEASED
        assert await levels(stub, "p1") == {"p1": (5, 0, 3)}

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Commit(pb.OrderRef(order_id="o-1"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_reserve_twice_answers_the_first_outcome(stub: InventoryStub, stock: Seed) -> None:
    await stock(p1=5)
    first = await stub.Reserve(reserve("o-1", p1=2))
    second = await stub.Reserve(reserve("o-1", p1=2))
    different = await stub.Reserve(reserve("o-1", p1=5))
    assert first == second == different
    assert await levels(stub, "p1") == {"p1": (5, 2, 2)}


async def test_concurrent_retries_of_one_order_hold_once(stub: InventoryStub, stock: Seed) -> None:
    await stock(p1=50)
    answers = await asyncio.gather(*(stub.Reserve(reserve("o-1", p1=3)) for _ in range(10)))
    assert {a.outcome for a in answers} == {RESERVED}
    assert await levels(stub, "p1") == {"p1": (50, 3, 2)}


async def test_an_out_of_stock_outcome_is_remembered(stub: InventoryStub, stock: Seed) -> None:
    await stock(p1=1)
    first = await stub.Reserve(reserve("o-1", p1=2))
    assert first.outcome == OUT_OF_STOCK and list(first.short_product_ids) == ["p1"]

    await stub.AdjustStock(pb.AdjustStockRequest(product_id="p1", delta=10, request_id="r-1"))
    assert await stub.Reserve(reserve("o-1", p1=2)) == first
    assert await levels(stub, "p1") == {"p1": (11, 0, 2)}

    released = await stub.Release(pb.OrderRef(order_id="o-1"))
    assert released.state == pb.ReservationStatus.NONE
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Commit(pb.OrderRef(order_id="o-1"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_reserve_is_all_or_nothing(stub: InventoryStub, stock: Seed) -> None:
    await stock(p1=10, p2=1)
    answer = await stub.Reserve(reserve("o-1", p1=5, p2=2, ghost=1))
    assert answer.outcome == OUT_OF_STOCK
    assert sorted(answer.short_product_ids) == ["ghost", "p2"]
    assert await levels(stub, "p1", "p2") == {"p1": (10, 0, 1), "p2": (1, 0, 1)}


async def test_fifty_concurrent_orders_for_ten_units_reserve_exactly_ten(
    stub: InventoryStub, stock: Seed
) -> None:
    await stock(p1=10, p2=100)
    # Lines in both orders of product ids: locking must not depend on the request's order.
    requests = [
        reserve(f"o-{i}", p1=1, p2=1) if i % 2 else reserve(f"o-{i}", p2=1, p1=1) for i in range(50)
    ]
    answers = await asyncio.gather(*(stub.Reserve(r) for r in requests))
    outcomes = [a.outcome for a in answers]
    assert outcomes.count(RESERVED) == 10
    assert outcomes.count(OUT_OF_STOCK) == 40
    assert await levels(stub, "p1", "p2") == {"p1": (10, 10, 11), "p2": (100, 10, 11)}

    winners = [r.order_id for r, a in zip(requests, answers, strict=True) if a.outcome == RESERVED]
    await asyncio.gather(*(stub.Commit(pb.OrderRef(order_id=o)) for o in winners))
    answer = await stub.GetStock(pb.GetStockRequest(product_ids=["p1"]))
    assert answer.levels[0].on_hand == answer.levels[0].reserved == answer.levels[0].available == 0


async def test_an_unknown_order_releases_as_none_and_cannot_commit(stub: InventoryStub) -> None:
    status = await stub.Release(pb.OrderRef(order_id="never"))
    assert status == pb.ReservationStatus(order_id="never", state=pb.ReservationStatus.NONE)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Commit(pb.OrderRef(order_id="never"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


BAD_RESERVES = [
    (reserve("", p1=1), "order_id"),
    (pb.ReserveRequest(order_id="o-bad"), "at least one line"),
    (reserve("o-bad", p1=0), "qty"),
    (reserve("o-bad", p1=-1), "qty"),
    (reserve("o-bad", p1=2_000_000_000), "qty"),
    (pb.ReserveRequest(order_id="o-bad", lines=[pb.Line(product_id="p1", qty=1)] * 2), "more than"),
    (reserve("o-bad", **{f"p{i}": 1 for i in range(101)}), "at most 100"),
    (reserve("o-bad", **{"": 1}), "product_id"),
    (reserve("o-" + "x" * 200, p1=1), "longer than"),
]


@pytest.mark.parametrize(("request_", "message"), BAD_RESERVES)
async def test_bad_reserve_is_invalid_argument_and_changes_nothing(
    stub: InventoryStub, stock: Seed, inventory: InventoryProcess, request_: Any, message: str
) -> None:
    await stock(p1=5)
    events_before = len(await outbox_events(inventory.db))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Reserve(request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (refused.value.details() or "")
    assert await levels(stub, "p1") == {"p1": (5, 0, 1)}
    assert len(await outbox_events(inventory.db)) == events_before
    # The refused order id was not claimed.
    assert (await stub.Reserve(reserve("o-bad", p1=1))).outcome == RESERVED


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.AdjustStockRequest(product_id="p1", delta=0, request_id="r-x"), "INVALID_ARGUMENT"),
        (pb.AdjustStockRequest(product_id="p1", delta=5), "INVALID_ARGUMENT"),
        (pb.AdjustStockRequest(product_id="", delta=5, request_id="r-x"), "INVALID_ARGUMENT"),
        (
            pb.AdjustStockRequest(product_id="p1", delta=2**31 - 1, request_id="r-x"),
            "INVALID_ARGUMENT",
        ),
        (pb.AdjustStockRequest(product_id="p1", delta=-4, request_id="r-x"), "FAILED_PRECONDITION"),
        (pb.AdjustStockRequest(product_id="nope", delta=-1, request_id="r-x"), "NOT_FOUND"),
    ],
)
async def test_bad_adjustments_are_refused(
    stub: InventoryStub, stock: Seed, request_: pb.AdjustStockRequest, code: str
) -> None:
    await stock(p1=5)
    await stub.Reserve(reserve("o-1", p1=2))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AdjustStock(request_)
    assert refused.value.code().name == code
    assert refused.value.details()
    assert await levels(stub) == {"p1": (5, 2, 2)}


async def test_adjust_is_idempotent_by_request_id(stub: InventoryStub, stock: Seed) -> None:
    await stock(p1=5)
    add = pb.AdjustStockRequest(product_id="p1", delta=3, request_id="r-1")
    first = await stub.AdjustStock(add)
    assert (first.on_hand, first.available, first.version) == (8, 8, 2)
    assert await stub.AdjustStock(add) == first
    assert await levels(stub, "p1") == {"p1": (8, 0, 2)}

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AdjustStock(pb.AdjustStockRequest(product_id="p1", delta=4, request_id="r-1"))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS

    removed = await stub.AdjustStock(
        pb.AdjustStockRequest(product_id="p1", delta=-8, request_id="r-2")
    )
    assert (removed.on_hand, removed.version) == (0, 3)


async def test_adjust_creates_stock_for_a_new_product(stub: InventoryStub) -> None:
    level = await stub.AdjustStock(pb.AdjustStockRequest(product_id="new", delta=7, request_id="r"))
    assert level == pb.StockLevel(product_id="new", on_hand=7, reserved=0, available=7, version=1)


async def test_get_stock_lists_all_or_the_ones_asked_for(stub: InventoryStub, stock: Seed) -> None:
    await stock(b=2, a=1, c=0)
    assert list(await levels(stub)) == ["a", "b", "c"]
    assert await levels(stub, "c", "a", "ghost", "a") == {"a": (1, 0, 1), "c": (0, 0, 1)}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetStock(pb.GetStockRequest(product_ids=["ok", ""]))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_change_writes_a_stock_changed_event_that_gets_published(
    stub: InventoryStub, stock: Seed, inventory: InventoryProcess, published: Published
) -> None:
    await stock(p1=5)
    await stub.Reserve(reserve("o-1", p1=2))
    await stub.Commit(pb.OrderRef(order_id="o-1"))
    await stub.AdjustStock(pb.AdjustStockRequest(product_id="p1", delta=4, request_id="r-1"))

    events = await outbox_events(inventory.db)
    assert [e["type"] for e in events] == ["stock.changed"] * 4
    assert [e["subject"] for e in events] == ["p1"] * 4
    assert [
        (e["data"]["on_hand"], e["data"]["reserved"], e["data"]["version"]) for e in events
    ] == [
        (5, 0, 1),
        (5, 2, 2),
        (3, 0, 3),
        (7, 0, 4),
    ]
    schema = json.loads((CONTRACTS / "events" / "stock.changed.json").read_text())
    for event in events:
        assert set(event["data"]) == set(schema["properties"]) >= set(schema["required"])
        assert event["data"]["available"] == event["data"]["on_hand"] - event["data"]["reserved"]

    # The relay wakes itself after each commit; the bound is for a stuck relay only, not
    # a speed claim (a loaded machine may take seconds).
    async with asyncio.timeout(30):
        await published.wait_for(4)
    assert [e["id"] for e in published.envelopes] == [e["id"] for e in events]
