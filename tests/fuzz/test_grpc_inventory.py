"""Hostile gRPC requests to a real inventory server (grpc.aio on a loopback port, a real
SQLite database, the bus in memory): Hypothesis sends sequences of Reserve, Commit,
Release, GetStock and AdjustStock with missing fields, empty, huge and unicode ids,
negative and absurd quantities, duplicate and unknown products. Every answer is OK or a
clean refusal, never UNKNOWN or INTERNAL, and the stock invariants hold after every
sequence: nothing negative, never more reserved than on hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bazaar.contracts.generated import inventory_pb2 as pb
from bazaar.contracts.generated.inventory_pb2_grpc import InventoryStub
from bazaar.platform.bus import Bus
from bazaar.services.inventory.bootstrap import MIGRATIONS, InventoryProcess, build_inventory
from bazaar.services.inventory.domain import SeedStock
from bazaar.services.inventory.settings import InventorySettings
from bazaar.testing import migrated_database

STOCK = {f"p{n}": units for n, units in enumerate([0, 1, 2, 5, 10, 99, 1000, 3])}
ORDERS = [f"order-{n}" for n in range(6)]  # a few ids, so commits find reservations
CLEAN = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
}
INT32 = (-(2**31), 2**31 - 1)
RPC_TIMEOUT = 10.0
FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Protobuf strings are UTF-8: lone surrogates cannot even be sent.
unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=120)
# Huge, but under the server's 1 MiB message limit (past it, see the test at the end).
huge_text = st.builds(
    lambda char, n: char * n, st.sampled_from("xé😀\u202e"), st.integers(101, 60_000)
)
ids = st.one_of(
    st.sampled_from(sorted(STOCK)),
    st.sampled_from(["", " ", "p1 ", "\tp1", "p1\n", "\x00", "nope", "P1", "p1\u200b"]),
    unicode_text,
    huge_text,
)
quantities = st.one_of(st.sampled_from([0, 1, 2, -1, 10_000, 10_001, *INT32]), st.integers(*INT32))
# Half of the calls are plausible (known products, small quantities), so that reservations
# really happen and the hostile calls meet held, committed and released stock.
plausible_lines = st.lists(
    st.builds(pb.Line, product_id=st.sampled_from(sorted(STOCK)), qty=st.integers(1, 4)),
    min_size=1,
    max_size=4,
    unique_by=lambda line: line.product_id,
)
hostile_lines = st.lists(st.builds(pb.Line, product_id=ids, qty=quantities), max_size=8)
lines = st.one_of(plausible_lines, hostile_lines)
order_ids = st.one_of(st.sampled_from(ORDERS), ids)
deltas = st.one_of(st.integers(-3, 3), quantities)
request_ids = st.one_of(st.sampled_from(["r1", "r2", "r3"]), ids)

calls = st.one_of(
    st.tuples(st.just("Reserve"), st.builds(pb.ReserveRequest, order_id=order_ids, lines=lines)),
    st.tuples(st.just("Commit"), st.builds(pb.OrderRef, order_id=order_ids)),
    st.tuples(st.just("Release"), st.builds(pb.OrderRef, order_id=order_ids)),
    st.tuples(
        st.just("GetStock"), st.builds(pb.GetStockRequest, product_ids=st.lists(ids, max_size=4))
    ),
    st.tuples(
        st.just("AdjustStock"),
        st.builds(pb.AdjustStockRequest, product_id=ids, delta=deltas, request_id=request_ids),
    ),
)


@pytest.fixture
async def inventory(tmp_path: Path) -> AsyncIterator[InventoryProcess]:
    settings_ = InventorySettings(
        home=tmp_path, host="127.0.0.1", port=0, environment="test", shutdown_grace_seconds=0.5
    )
    db = migrated_database(MIGRATIONS, tmp_path, "inventory")
    bus = Bus("memory://inventory", "inventory")  # each test (its own loop) starts empty
    process = build_inventory(settings_, db=db, bus=bus)
    await process.start()
    await process.service.seed(SeedStock(tuple(STOCK.items())))
    try:
        yield process
    finally:
        await process.stop()


@pytest.fixture
async def stub(inventory: InventoryProcess) -> AsyncIterator[InventoryStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inventory.port}") as channel:
        yield InventoryStub(channel)


async def status_of(stub: InventoryStub, method: str, request: Any) -> grpc.StatusCode:
    try:
        await getattr(stub, method)(request, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def assert_stock_invariants(stub: InventoryStub) -> dict[str, tuple[int, int]]:
    """Every product's (on_hand, reserved), after checking none breaks a rule."""
    answer = await stub.GetStock(pb.GetStockRequest(), timeout=RPC_TIMEOUT)
    levels = {}
    for level in answer.levels:
        assert 0 <= level.reserved <= level.on_hand, level
        assert level.available == level.on_hand - level.reserved, level
        levels[level.product_id] = (level.on_hand, level.reserved)
    assert set(STOCK) <= set(levels)
    return levels


@FUZZ
@given(sequence=st.lists(calls, min_size=1, max_size=12))
async def test_any_sequence_of_calls_gets_clean_answers_and_keeps_the_stock_sound(
    stub: InventoryStub, sequence: list[tuple[str, Any]]
) -> None:
    for method, request in sequence:
        code = await status_of(stub, method, request)
        event(f"{method}: {code.name}")
        assert code in CLEAN, (method, str(request)[:500], code)
    await assert_stock_invariants(stub)


async def test_ten_thousand_lines_are_refused_and_change_nothing(stub: InventoryStub) -> None:
    before = await assert_stock_invariants(stub)
    request = pb.ReserveRequest(
        order_id="huge", lines=[pb.Line(product_id=f"p{n % 8}", qty=1) for n in range(10_000)]
    )
    assert await status_of(stub, "Reserve", request) == grpc.StatusCode.INVALID_ARGUMENT
    assert await assert_stock_invariants(stub) == before


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("Reserve", pb.ReserveRequest()),
        ("Reserve", pb.ReserveRequest(order_id="o1")),
        ("Reserve", pb.ReserveRequest(lines=[pb.Line(product_id="p4", qty=1)])),
        ("Reserve", pb.ReserveRequest(order_id="o1", lines=[pb.Line(qty=1)])),
        ("Reserve", pb.ReserveRequest(order_id="o1", lines=[pb.Line(product_id="p4")])),
        (
            "Reserve",
            pb.ReserveRequest(
                order_id="o1",
                lines=[pb.Line(product_id="p4", qty=1), pb.Line(product_id="p4", qty=2)],
            ),
        ),
        ("Commit", pb.OrderRef()),
        ("Release", pb.OrderRef()),
        ("AdjustStock", pb.AdjustStockRequest()),
        ("AdjustStock", pb.AdjustStockRequest(product_id="p4", delta=1)),
        ("AdjustStock", pb.AdjustStockRequest(product_id="p4", request_id="r1")),
        ("AdjustStock", pb.AdjustStockRequest(product_id="p4", delta=1, request_id="seed:p4")),
        ("GetStock", pb.GetStockRequest(product_ids=[f"p{n}" for n in range(1001)])),
    ],
)
async def test_missing_fields_duplicates_and_too_many_ids_are_invalid_arguments(
    stub: InventoryStub, method: str, request_: Any
) -> None:
    before = await assert_stock_invariants(stub)
    assert await status_of(stub, method, request_) == grpc.StatusCode.INVALID_ARGUMENT
    assert await assert_stock_invariants(stub) == before


async def test_bytes_that_are_no_valid_message_are_refused_cleanly(
    inventory: InventoryProcess,
) -> None:
    """What no generated client sends: truncated protobuf, and a string field that is not
    UTF-8. The server must say INVALID_ARGUMENT, not crash (or answer INTERNAL)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inventory.port}") as channel:
        raw = channel.unary_unary(
            "/bazaar.inventory.v1.Inventory/GetStock",
            request_serializer=lambda body: body,
            response_deserializer=lambda body: body,
        )
        not_utf8 = b"\x0a\x02\xff\xfe"  # field 1 (product_ids), 2 bytes, invalid UTF-8
        truncated = b"\x0a\x10p1"  # announces 16 bytes, carries 2
        for body in (not_utf8, truncated):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await raw(body, timeout=RPC_TIMEOUT)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, body
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inventory.port}") as channel:
        await assert_stock_invariants(InventoryStub(channel))


async def test_a_message_over_the_size_limit_is_refused_before_the_service_sees_it(
    stub: InventoryStub,
) -> None:
    before = await assert_stock_invariants(stub)
    request = pb.ReserveRequest(order_id="x" * (2 * 1024 * 1024), lines=[pb.Line(qty=1)])
    assert await status_of(stub, "Reserve", request) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await assert_stock_invariants(stub) == before
