"""Provider verification: every pact in contracts/pacts/ replayed against the real provider
app, served by uvicorn (waitress for auth) on a free loopback port, on a migrated SQLite
database of its own. Provider states are set up through the provider's own API, so they
stay true to what the provider does whatever its insides become.

Tokens: the provider verifies bearer tokens against the JWKS of a TokenMinter (as the
services' own tests do), and every replayed request carries one of its tokens for the
user the states are about."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bazaar.platform.bus import Bus
from bazaar.testing import TokenMinter, migrated_database

from .pacts import ServedApp, StateHandler, served_wsgi, verify

USER = "u-ada"  # the user of every authenticated interaction


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


def bearer(minter: TokenMinter, user_id: str = USER, **claims: object) -> dict[str, str]:
    return minter.headers(user_id, **claims)


def call(method: str, url: str, *, fine: tuple[int, ...] = (404,), **kwargs: object) -> None:
    """A state handler's call to the provider's API: a success, or an answer that says
    the state is there already (`fine`)."""
    answer = httpx.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]
    assert answer.is_success or answer.status_code in fine, (url, answer.text)


# -- cart ---------------------------------------------------------------------------------

CART_PRICES = {"p-tea": ("Tea", 450), "p-mug": ("Mug", 1200)}


@pytest.fixture
def cart(tmp_path: Path, minter: TokenMinter) -> Iterator[ServedApp]:
    from bazaar.services.cart.bootstrap import MIGRATIONS, build_app
    from bazaar.services.cart.settings import CartSettings
    from bazaar.services.cart.tests.fakes import FakeCatalog

    bus = Bus("memory://cart", "cart")
    app = build_app(
        CartSettings(home=tmp_path, environment="test"),
        db=migrated_database(MIGRATIONS, tmp_path, "cart"),
        bus=bus,
        verifier=minter.verifier(),
        pricing=FakeCatalog(CART_PRICES),  # prices are the quote's contract, not this one
    )
    with ServedApp(app) as served:
        yield served


def cart_states(url: str, minter: TokenMinter) -> dict[str, StateHandler]:
    def cart_with_tea() -> None:
        call("DELETE", f"{url}/api/cart/items/p-tea", headers=bearer(minter))
        body = {"product_id": "p-tea", "qty": 2}
        call("POST", f"{url}/api/cart/items", json=body, headers=bearer(minter))

    return {
        "u-ada has 2 of p-tea in the cart": cart_with_tea,
        "u-bob has no cart": lambda: None,
        "p-tea can be bought": lambda: None,  # the price list has it
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


# -- catalog ------------------------------------------------------------------------------


def catalog_app(
    tmp_path: Path, minter: TokenMinter, wrap: Callable[[Any], Any] = lambda a: a
) -> Any:
    from bazaar.services.catalog import handlers
    from bazaar.services.catalog.bootstrap import MIGRATIONS, build_app
    from bazaar.services.catalog.domain import Category
    from bazaar.services.catalog.settings import CatalogSettings

    db = migrated_database(MIGRATIONS, tmp_path, "catalog")
    bus = Bus("memory://catalog", "catalog")
    app = build_app(
        CatalogSettings(home=tmp_path, environment="test"),
        db=db,
        bus=bus,
        verifier=minter.verifier(),
    )
    served = ServedApp(wrap(app))

    def tea() -> None:
        draft = handlers.ProductDraft("Green tea", "Loose leaf, 100 g", "kitchen", 450, "", "p-tea")
        kitchen = Category("kitchen", "Kitchen")
        served.run(handlers.CatalogService(db).seed([kitchen], [handlers.SeedItem(draft, 7)]))

    states = {"p-tea is in the catalog": tea, "p-gone is not in the catalog": lambda: None}
    return served, states


def test_catalog_honours_its_pacts(tmp_path: Path, minter: TokenMinter) -> None:
    served, states = catalog_app(tmp_path, minter)
    with served:
        verify("catalog", served.url, states)


def renaming(app: Any, old: str, new: str) -> Any:
    """The app, with the JSON field `old` of its answers renamed `new`: the break a
    provider makes when it renames a field in its response model."""

    async def renamed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        started: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def hold(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks).replace(f'"{old}":'.encode(), f'"{new}":'.encode())
            headers = [(k, v) for k, v in started["headers"] if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**started, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await app(scope, receive, hold)

    return renamed


def test_a_renamed_catalog_field_fails_verification_naming_it(
    tmp_path: Path, minter: TokenMinter
) -> None:
    served, states = catalog_app(
        tmp_path, minter, lambda app: renaming(app, "price_cents", "price")
    )
    with served, pytest.raises(pytest.fail.Exception) as failure:
        verify("catalog", served.url, states)
    report = str(failure.value)
    print(report)  # what `make contracts` shows
    assert "Verifying a pact between gateway and catalog" in report
    assert "Actual map is missing the following keys: price_cents" in report


# -- auth ---------------------------------------------------------------------------------


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[str]:
    from argon2 import PasswordHasher

    from bazaar.platform.flaskapp import SyncDatabase
    from bazaar.platform.migrations import migrate
    from bazaar.services.auth.bootstrap import MIGRATIONS, build_app
    from bazaar.services.auth.passwords import Passwords
    from bazaar.services.auth.settings import AuthSettings

    settings = AuthSettings(home=tmp_path, environment="test")
    migrate(MIGRATIONS, settings.database_url)
    db = SyncDatabase(settings.database_url)
    # Still argon2id, cheap enough for a test (as auth's own tests do).
    passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    with served_wsgi(build_app(settings, db=db, passwords=passwords)) as url:
        yield url
    db.dispose()


def test_auth_honours_its_pacts(auth: str) -> None:
    def ada() -> None:
        body = {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
        call("POST", f"{auth}/api/auth/signup", json=body, fine=(409,))

    states = {
        "nobody signed up with new@example.com": lambda: None,
        "ada@example.com signed up with the password 'correct horse'": ada,
        "auth has a signing key": lambda: None,  # made when the app is built
    }
    verify("auth", auth, states)


# -- order --------------------------------------------------------------------------------


@pytest.fixture
def order(tmp_path: Path, minter: TokenMinter) -> Iterator[tuple[ServedApp, Any]]:
    """The order app over fakes of its neighbours (cart, catalog's prices, inventory,
    payment: their contracts are checked on their own), as order's own tests run it."""
    from bazaar.platform.dependencies import provided
    from bazaar.services.order.bootstrap import MIGRATIONS, build_app
    from bazaar.services.order.handlers import OrderService
    from bazaar.services.order.settings import OrderSettings
    from bazaar.services.order.tests.support import FAST, Neighbours

    settings = OrderSettings(home=tmp_path, **FAST)
    neighbours = Neighbours()
    bus = Bus("memory://order", "order")
    app = build_app(
        settings,
        db=migrated_database(MIGRATIONS, tmp_path, "order"),
        bus=bus,
        token_verifier=minter.verifier(),
        inventory=neighbours.inventory,
        payments=neighbours.payments,
        carts=neighbours.carts,
        pricing=neighbours.pricing,
    )
    with ServedApp(app) as served:
        yield served, (provided(app, OrderService), neighbours)


def order_states(served: ServedApp, orders: Any, neighbours: Any) -> dict[str, StateHandler]:
    from bazaar.services.order.domain import OrderStatus
    from bazaar.services.order.handlers import Checkout

    def cart_with_tea() -> None:
        neighbours.carts.put(USER, ("p-tea", 2))

    async def paid_order() -> str:
        order = await orders.checkout(Checkout(USER, "ada@example.com"))
        for _ in range(1500):  # the saga pays it at once over the fakes; 30 s on a busy CI
            current = await orders.find(USER, order.id)
            if current is not None and current.status == OrderStatus.PAID:
                return str(order.id)
            await asyncio.sleep(0.02)
        raise AssertionError(f"order {order.id} was never paid: {current}")

    def placed_and_paid() -> dict[str, str]:
        cart_with_tea()
        return {"order_id": served.run(paid_order(), timeout=60)}

    return {
        "u-ada has 2 of p-tea in the cart": cart_with_tea,
        "u-ada has a paid order": placed_and_paid,  # its id goes to `${order_id}`
        "u-ada has no order o-gone": lambda: None,
    }


def test_order_honours_its_pacts(order: tuple[ServedApp, Any], minter: TokenMinter) -> None:
    served, (orders, neighbours) = order
    states = order_states(served, orders, neighbours)
    verify("order", served.url, states, headers=bearer(minter, email="ada@example.com"))
