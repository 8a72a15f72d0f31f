"""The real adapters against stand-ins of their neighbours: a tiny gRPC inventory
servicer written here (not the inventory service's code), HTTP answers from an httpx
mock transport, and a catalog responder on the in-memory bus."""

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import pytest

from bazaar.contracts.generated import inventory_pb2, inventory_pb2_grpc
from bazaar.contracts.quotes import QUOTE_SUBJECT
from bazaar.platform.bus import BadRequest, Bus
from bazaar.platform.clients import ResilientClient
from bazaar.services.order.adapters import BusPricing, GrpcInventory, HttpCarts, HttpPayments
from bazaar.services.order.domain import CartLine, Quote
from bazaar.services.order.ports import (
    CartsUnavailable,
    Charge,
    Commitment,
    InventoryUnavailable,
    PaymentsUnavailable,
    PricingRefused,
    PricingUnavailable,
    Refund,
    Release,
    Reservation,
)
from bazaar.testing import free_port

Status = inventory_pb2.ReservationStatus

# --- inventory over gRPC ----------------------------------------------------------------


class TinyInventory(inventory_pb2_grpc.InventoryServicer):
    """Just enough of the contract: 5 units of everything, `p-none` unknown."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.reserved_lines: dict[str, list[tuple[str, int]]] = {}
        self.broken = False

    async def Reserve(
        self, request: inventory_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ReserveResponse:
        if self.broken:
            await context.abort(grpc.StatusCode.INTERNAL, "boom")
        lines = [(line.product_id, line.qty) for line in request.lines]
        if any(pid == "p-none" for pid, _ in lines):
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown product p-none")
        short = [pid for pid, qty in lines if qty > 5]
        if short:
            return inventory_pb2.ReserveResponse(
                outcome=inventory_pb2.ReserveResponse.OUT_OF_STOCK, short_product_ids=short
            )
        self.state[request.order_id] = "reserved"
        self.reserved_lines[request.order_id] = lines
        return inventory_pb2.ReserveResponse(outcome=inventory_pb2.ReserveResponse.RESERVED)

    async def Commit(
        self, request: inventory_pb2.OrderRef, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ReservationStatus:
        if self.state.get(request.order_id) not in ("reserved", "committed"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not reserved")
        self.state[request.order_id] = "committed"
        return Status(order_id=request.order_id, state=Status.COMMITTED)

    async def Release(
        self, request: inventory_pb2.OrderRef, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ReservationStatus:
        state = self.state.get(request.order_id)
        if state == "committed":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "already committed")
        if state is None:
            return Status(order_id=request.order_id, state=Status.NONE)
        self.state[request.order_id] = "released"
        return Status(order_id=request.order_id, state=Status.RELEASED)


@pytest.fixture
async def tiny_inventory() -> AsyncIterator[tuple[TinyInventory, GrpcInventory]]:
    servicer = TinyInventory()
    server = grpc.aio.server()
    inventory_pb2_grpc.add_InventoryServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = GrpcInventory(f"127.0.0.1:{port}", timeout=2.0)
    yield servicer, client
    await client.aclose()
    await server.stop(None)


async def test_grpc_inventory_reserves_commits_and_releases(
    tiny_inventory: tuple[TinyInventory, GrpcInventory],
) -> None:
    servicer, inventory = tiny_inventory
    lines = [CartLine("p-tea", 2), CartLine("p-mug", 1)]
    assert await inventory.reserve("o1", lines) is Reservation.RESERVED
    assert servicer.reserved_lines["o1"] == [("p-tea", 2), ("p-mug", 1)]
    assert await inventory.commit("o1") is Commitment.COMMITTED
    assert await inventory.release("o1") is Release.ALREADY_COMMITTED

    assert await inventory.reserve("o2", [CartLine("p-tea", 1)]) is Reservation.RESERVED
    assert await inventory.release("o2") is Release.RELEASED
    assert await inventory.commit("o2") is Commitment.NOT_RESERVED
    assert await inventory.release("never-reserved") is Release.RELEASED


async def test_grpc_inventory_refusals_are_out_of_stock(
    tiny_inventory: tuple[TinyInventory, GrpcInventory],
) -> None:
    _, inventory = tiny_inventory
    assert await inventory.reserve("o1", [CartLine("p-tea", 6)]) is Reservation.OUT_OF_STOCK
    assert await inventory.reserve("o2", [CartLine("p-none", 1)]) is Reservation.OUT_OF_STOCK


async def test_grpc_inventory_failures_are_unavailable(
    tiny_inventory: tuple[TinyInventory, GrpcInventory],
) -> None:
    servicer, inventory = tiny_inventory
    servicer.broken = True
    with pytest.raises(InventoryUnavailable, match="INTERNAL"):
        await inventory.reserve("o1", [CartLine("p-tea", 1)])
    nobody = GrpcInventory(f"127.0.0.1:{free_port()}", timeout=0.3)
    try:
        with pytest.raises(InventoryUnavailable):
            await nobody.commit("o1")
    finally:
        await nobody.aclose()


# --- payment and cart over HTTP ---------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def http_client(handler: Handler, **kwargs: Any) -> ResilientClient:
    return ResilientClient(
        "order", "neighbour", "http://neighbour", transport=httpx.MockTransport(handler), **kwargs
    )


async def test_a_charge_is_keyed_by_the_order_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = "declined" if b"o-poor" in request.content else "captured"
        return httpx.Response(201, json={"payment_id": "x", "status": status})

    payments = HttpPayments(http_client(handler))
    assert await payments.charge("o1", 1500) is Charge.CAPTURED
    assert await payments.charge("o-poor", 10) is Charge.DECLINED
    assert seen[0].url.path == "/internal/payments"
    assert seen[0].headers["Idempotency-Key"] == "o1"
    assert httpx.Response(200, content=seen[0].content).json() == {
        "order_id": "o1",
        "amount_cents": 1500,
    }


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, json={"detail": "outage"}),
        httpx.Response(500, text="oops"),
        httpx.Response(409, json={"detail": "key reused"}),
        httpx.Response(201, json={"status": "pending"}),
        httpx.Response(201, text="not json"),
    ],
)
async def test_a_charge_without_a_clear_answer_is_unavailable(answer: httpx.Response) -> None:
    payments = HttpPayments(http_client(lambda _: answer, attempts=2))
    with pytest.raises(PaymentsUnavailable):
        await payments.charge("o1", 100)


async def test_an_open_breaker_is_unavailable_without_calling() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    payments = HttpPayments(http_client(handler, attempts=1, breaker_threshold=2))
    for _ in range(4):
        with pytest.raises(PaymentsUnavailable):
            await payments.charge("o1", 100)
    assert calls == 2


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("refunded", Refund.REFUNDED),
        ("voided", Refund.NOTHING_TO_REFUND),
        ("declined", Refund.NOTHING_TO_REFUND),
    ],
)
async def test_a_refund_cancels_the_payment(status: str, expected: Refund) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"order_id": "o1", "status": status})

    assert await HttpPayments(http_client(handler)).refund("o1", 700) is expected
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/internal/payments/o1/cancel")
    assert json.loads(request.content) == {"amount_cents": 700}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503),
        httpx.Response(404, json={"detail": "no such route"}),
        httpx.Response(200, json={"status": "captured"}),
        httpx.Response(200, json={"status": "weird"}),
        httpx.Response(200, content=b"not json"),
    ],
)
async def test_a_refund_that_fails_is_unavailable(answer: httpx.Response) -> None:
    payments = HttpPayments(http_client(lambda _: answer, attempts=1))
    with pytest.raises(PaymentsUnavailable):
        await payments.refund("o1", 700)


async def test_the_cart_is_read_per_user() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.raw_path == b"/internal/carts/ann%2Fx":
            return httpx.Response(
                200,
                json={"user_id": "ann/x", "items": [{"product_id": "p-tea", "qty": 2, "x": 1}]},
            )
        return httpx.Response(404, json={"detail": "no cart"})

    carts = HttpCarts(http_client(handler))
    assert await carts.lines("ann/x") == [CartLine("p-tea", 2)]
    assert await carts.lines("bob") == []


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503),
        httpx.Response(200, json={"items": [{"product_id": "p", "qty": 0}]}),
        httpx.Response(200, json={"items": "many"}),
        httpx.Response(200, text="<html>"),
    ],
)
async def test_an_unreadable_cart_is_unavailable(answer: httpx.Response) -> None:
    with pytest.raises(CartsUnavailable):
        await HttpCarts(http_client(lambda _: answer, attempts=1)).lines("ann")


# --- prices over the bus ----------------------------------------------------------------


async def catalog_answer(payload: dict[str, Any]) -> dict[str, Any]:
    ids = payload["product_ids"]
    if "p-bad" in ids:
        raise BadRequest("p-bad is not a product id")
    if "p-garbled" in ids:
        return {"quotes": "everything is free"}
    known = [pid for pid in ids if pid != "p-gone"]
    return {
        "quotes": [{"product_id": pid, "name": pid.upper(), "price_cents": 100} for pid in known],
        "missing": [pid for pid in ids if pid == "p-gone"],
    }


async def test_prices_come_by_request_reply_on_the_bus() -> None:
    bus = Bus("memory://order", "order")
    bus.on_request(QUOTE_SUBJECT, catalog_answer)
    pricing = BusPricing(bus, timeout=1.0)
    await bus.start()
    quotes = await pricing.quote(["p-tea", "p-gone"])
    assert quotes.by_product == {"p-tea": Quote("p-tea", "P-TEA", 100)}
    assert quotes.missing == ["p-gone"]
    with pytest.raises(PricingRefused, match="p-bad"):
        await pricing.quote(["p-bad"])
    with pytest.raises(PricingUnavailable):
        await pricing.quote(["p-garbled"])
    await bus.stop()


async def test_no_catalog_on_the_bus_is_unavailable() -> None:
    bus = Bus("memory://order", "order")
    await bus.start()
    with pytest.raises(PricingUnavailable):
        await BusPricing(bus, timeout=0.2).quote(["p-tea"])
    await bus.stop()
