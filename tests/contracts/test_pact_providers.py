"""Provider verification: every pact in contracts/pacts/ replayed against the real provider
app, served by uvicorn (waitress for auth) on a free loopback port, on a migrated SQLite
database of its own. Provider states are set up through the provider's own API, so they
stay true to what the provider does whatever its insides become.

Tokens: the provider verifies bearer tokens against the JWKS of a TokenMinter (as the
services' own tests do), and every replayed request carries one of its tokens for the
user the states are about."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faststream.nats import TestNatsBroker

from bazaar.platform.bus import Bus
from bazaar.platform.testing import TokenMinter, migrated_database

from .pacts import ServedApp, StateHandler, verify

USER = "u-ada"  # the user of every authenticated interaction


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


def bearer(minter: TokenMinter, user_id: str = USER, **claims: object) -> dict[str, str]:
    return minter.headers(user_id, **claims)


def call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """A state handler's call to the provider's API; it must succeed."""
    answer = httpx.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]
    assert answer.is_success or answer.status_code == 404, (url, answer.text)
    return answer


# -- cart ---------------------------------------------------------------------------------

CART_PRICES = {"p-tea": ("Tea", 450), "p-mug": ("Mug", 1200)}


@pytest.fixture
def cart(tmp_path: Path, minter: TokenMinter) -> Iterator[ServedApp]:
    from bazaar.services.cart.bootstrap import MIGRATIONS, build_app
    from bazaar.services.cart.settings import CartSettings
    from bazaar.services.cart.tests.fakes import FakeCatalog

    bus = Bus("nats://127.0.0.1:4222", "cart")  # in memory (TestNatsBroker), never connects
    app = build_app(
        CartSettings(home=tmp_path, environment="test"),
        db=migrated_database(MIGRATIONS, tmp_path, "cart"),
        bus=bus,
        verifier=minter.verifier(),
        pricing=FakeCatalog(CART_PRICES),  # prices are the quote's contract, not this one
    )
    with ServedApp(app, around=lambda: TestNatsBroker(bus.broker)) as served:
        yield served


def cart_states(url: str, minter: TokenMinter) -> dict[str, StateHandler]:
    def cart_with_tea() -> None:
        call("DELETE", f"{url}/api/cart/items/p-tea", headers=bearer(minter))
        body = {"product_id": "p-tea", "qty": 2}
        call("POST", f"{url}/api/cart/items", json=body, headers=bearer(minter))

    return {
        "u-ada has 2 of p-tea in the cart": cart_with_tea,
        "u-bob has no cart": lambda: None,
    }


def test_cart_honours_its_pacts(cart: ServedApp, minter: TokenMinter) -> None:
    verify("cart", cart.url, cart_states(cart.url, minter), headers=bearer(minter))


# -- payment ------------------------------------------------------------------------------


@pytest.fixture
def payment(tmp_path: Path) -> Iterator[ServedApp]:
    from bazaar.services.payment.bootstrap import MIGRATIONS, build_app
    from bazaar.services.payment.settings import PaymentSettings

    settings = PaymentSettings(home=tmp_path, environment="test")
    app = build_app(settings, db=migrated_database(MIGRATIONS, tmp_path, "payment"))
    with ServedApp(app) as served:
        yield served


def payment_states(url: str) -> dict[str, StateHandler]:
    def mode(name: str) -> None:
        call("PUT", f"{url}/internal/mode", json={"mode": name})

    def charged(order_id: str) -> None:
        mode("ok")
        body = {"order_id": order_id, "amount_cents": 1234}
        call("POST", f"{url}/internal/payments", json=body, headers={"Idempotency-Key": order_id})

    return {
        "the processor accepts charges": lambda: mode("ok"),
        "the processor declines charges": lambda: mode("decline"),
        "o-charged was charged 1234": lambda: charged("o-charged"),
        "o-never was never charged": lambda: mode("ok"),
    }


def test_payment_honours_its_pacts(payment: ServedApp) -> None:
    verify("payment", payment.url, payment_states(payment.url))
