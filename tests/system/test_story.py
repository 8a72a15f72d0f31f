"""The story that must always work, through the gateway, against real processes: sign up,
browse, add to cart, check out, get paid, get mail, see the stock go down. And the two
ways a checkout is cancelled: out of stock, payment declined (stock released)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bazaar.runner.check import find_violations
from bazaar.runner.platform import Platform
from bazaar.testing.api import ok, poll
from bazaar.testing.platform_broker import PLATFORM_BROKERS

pytestmark = pytest.mark.system
# The story holds on every broker the platform runs on.
BROKERS = PLATFORM_BROKERS

FINAL = {"paid", "cancelled"}


def sign_up(api: httpx.Client) -> tuple[str, dict[str, str]]:
    email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
    body = ok(
        api.post(
            "/api/auth/signup",
            json={"email": email, "password": "a long passphrase 42", "name": "Sam Shopper"},
        ),
        201,
    )
    assert body["token_type"].lower() == "bearer" and body["user"]["email"] == email
    return email, {"Authorization": f"Bearer {body['access_token']}"}


def products(api: httpx.Client) -> list[dict[str, Any]]:
    page = ok(api.get("/api/products", params={"page_size": 100}))
    assert page["total"] >= 36 and len(page["items"]) >= 36
    return sorted(page["items"], key=lambda p: p["id"])


def stock_of(api: httpx.Client, product_id: str) -> int:
    stock: int = ok(api.get(f"/api/products/{product_id}"))["stock"]
    return stock


def checkout(api: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    created = ok(
        api.post("/api/checkout", headers={**auth, "Idempotency-Key": uuid.uuid4().hex}), 201
    )
    assert created["status"] in {"pending", *FINAL}
    return poll(
        lambda: ok(api.get(f"/api/orders/{created['order_id']}", headers=auth)),
        lambda order: order["status"] in FINAL,
        timeout=30,
        what=f"a final status for order {created['order_id']}",
    )


def test_sign_up_browse_buy_get_paid_get_mail(api: httpx.Client, platform: Platform) -> None:
    email, auth = sign_up(api)
    product = next(p for p in products(api) if p["stock"] >= 5)
    before = stock_of(api, product["id"])

    cart = ok(
        api.post("/api/cart/items", json={"product_id": product["id"], "qty": 2}, headers=auth)
    )
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(product["id"], 2)]
    assert cart["total_cents"] == 2 * product["price_cents"]

    order = checkout(api, auth)

    assert order["status"] == "paid", order
    assert order["reason"] is None
    assert order["total_cents"] == 2 * product["price_cents"]
    assert [(i["product_id"], i["qty"]) for i in order["items"]] == [(product["id"], 2)]
    mails = poll(lambda: platform.mails_to(email), bool, timeout=15, what=f"a mail to {email}")
    assert len(mails) == 1
    body = mails[0].get_body(preferencelist=("plain", "html"))
    assert body is not None and order["id"] in body.get_content()
    poll(
        lambda: stock_of(api, product["id"]),
        lambda s: s == before - 2,
        timeout=10,
        what="stock down by 2",
    )
    poll(
        lambda: ok(api.get("/api/cart", headers=auth))["items"],
        lambda items: items == [],
        timeout=10,
        what="an empty cart",
    )
    assert stock_of(api, product["id"]) == before - 2  # and not lower


def test_ordering_more_than_the_stock_cancels_with_out_of_stock(api: httpx.Client) -> None:
    _, auth = sign_up(api)
    product = min(products(api)[2:], key=lambda p: p["stock"])
    before = stock_of(api, product["id"])
    assert before + 1 <= 99, "the cart allows 99 at most"

    ok(
        api.post(
            "/api/cart/items", json={"product_id": product["id"], "qty": before + 1}, headers=auth
        )
    )
    order = checkout(api, auth)

    assert (order["status"], order["reason"]) == ("cancelled", "out_of_stock"), order
    assert stock_of(api, product["id"]) == before
    # Rather than wait and see that nothing happens: someone else buys one, and its stock
    # event (newer than any the cancelled order could have caused) must show exactly one
    # fewer: the cancelled order took nothing.
    _, other = sign_up(api)
    ok(api.post("/api/cart/items", json={"product_id": product["id"], "qty": 1}, headers=other))
    assert checkout(api, other)["status"] == "paid"
    poll(
        lambda: stock_of(api, product["id"]),
        lambda s: s == before - 1,
        timeout=10,
        what="stock down by the one bought after",
    )


@pytest.fixture
def declining_payments(platform: Platform) -> Iterator[None]:
    with httpx.Client(base_url=platform.url("payment"), timeout=10.0, trust_env=False) as payment:
        ok(payment.put("/internal/mode", json={"mode": "decline"}))
        try:
            yield
        finally:
            ok(payment.put("/internal/mode", json={"mode": "ok"}))


def test_a_declined_payment_cancels_and_releases_the_stock(
    api: httpx.Client, declining_payments: None
) -> None:
    _, auth = sign_up(api)
    product = products(api)[1]
    before = stock_of(api, product["id"])

    ok(api.post("/api/cart/items", json={"product_id": product["id"], "qty": 1}, headers=auth))
    order = checkout(api, auth)

    assert (order["status"], order["reason"]) == ("cancelled", "payment_declined"), order
    poll(
        lambda: stock_of(api, product["id"]),
        lambda s: s == before,
        timeout=10,
        what="stock released",
    )


def test_after_the_story_the_checker_finds_nothing(platform: Platform) -> None:
    """Last in this module: `bazaar check` on what the stories above left behind (every
    order final, stock conserved, charged once, each mail sent once, outboxes drained)."""
    poll(
        lambda: [f"{v.kind} {v.subject}: {v.detail}" for v in find_violations(platform.home.root)],
        lambda violations: not violations,
        timeout=30,
        what="no violations",
    )
