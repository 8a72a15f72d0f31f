"""Order's HTTP neighbours as order's own client code calls them (order/adapters.py:
HttpCarts, HttpPayments over the platform's ResilientClient), against Pact mock servers.
The pacts (contracts/pacts/order-cart.json, order-payment.json) say what order sends and
the fields it reads; test_pact_providers.py replays them against the real services."""

from __future__ import annotations

from pathlib import Path

from bazaar.platform.clients import ResilientClient
from bazaar.services.order.adapters import HttpCarts, HttpPayments
from bazaar.services.order.domain import CartLine
from bazaar.services.order.ports import Charge, Refund

from .pacts import keep, new_pact, pact

match = pact.match
JSON = "application/json"


def client(target: str, url: object) -> ResilientClient:
    # One attempt: a mock server answers at once, and a retry would be a second request.
    return ResilientClient("order", target, str(url), attempts=1)


async def test_order_reads_carts(tmp_path: Path) -> None:
    carts = new_pact("order", "cart")
    (
        carts.upon_receiving("a request for the lines of a user's cart")
        .given("u-ada has 2 of p-tea in the cart")
        .with_request("GET", "/internal/carts/u-ada")
        .will_respond_with(200)
        .with_body(
            {
                "user_id": match.str("u-ada"),
                "items": match.each_like({"product_id": match.str("p-tea"), "qty": match.int(2)}),
            },
            content_type=JSON,
        )
    )
    (
        carts.upon_receiving("a request for the lines of a user who has no cart")
        .given("u-bob has no cart")
        .with_request("GET", "/internal/carts/u-bob")
        .will_respond_with(200)
        .with_body({"user_id": match.str("u-bob"), "items": []}, content_type=JSON)
    )
    with carts.serve() as server:
        http = client("cart", server.url)
        assert await HttpCarts(http).lines("u-ada") == [CartLine("p-tea", 2)]
        assert await HttpCarts(http).lines("u-bob") == []
        await http.aclose()
    keep(carts, tmp_path)


def charge_of(payments: object, order_id: str, state: str, status: str) -> None:
    (
        payments.upon_receiving(f"a charge of {order_id} that is {status}")  # type: ignore[attr-defined]
        .given(state)
        .with_request("POST", "/internal/payments")
        .with_header("Idempotency-Key", order_id)
        .with_body({"order_id": order_id, "amount_cents": 1234}, content_type=JSON)
        .will_respond_with(201)
        .with_body({"status": status}, content_type=JSON)
    )


def cancel_of(payments: object, order_id: str, state: str, status: str) -> None:
    (
        payments.upon_receiving(f"the cancellation of {order_id}'s payment, {status}")  # type: ignore[attr-defined]
        .given(state)
        .with_request("POST", f"/internal/payments/{order_id}/cancel")
        .with_body({"amount_cents": 1234}, content_type=JSON)
        .will_respond_with(200)
        .with_body({"status": status}, content_type=JSON)
    )


async def test_order_charges_and_cancels_payments(tmp_path: Path) -> None:
    payments = new_pact("order", "payment")
    # The status decides what order does next, so it is matched as a value, not a type.
    charge_of(payments, "o-paid", "the processor accepts charges", "captured")
    charge_of(payments, "o-declined", "the processor declines charges", "declined")
    cancel_of(payments, "o-charged", "o-charged was charged 1234", "refunded")
    cancel_of(payments, "o-never", "o-never was never charged", "voided")
    with payments.serve() as server:
        http = client("payment", server.url)
        port = HttpPayments(http)
        assert await port.charge("o-paid", 1234) == Charge.CAPTURED
        assert await port.charge("o-declined", 1234) == Charge.DECLINED
        assert await port.refund("o-charged", 1234) == Refund.REFUNDED
        assert await port.refund("o-never", 1234) == Refund.NOTHING_TO_REFUND
        await http.aclose()
    keep(payments, tmp_path)
