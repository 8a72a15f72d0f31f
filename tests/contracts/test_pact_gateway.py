"""The gateway as a consumer, driven as a black box: the gateway app (its storefront, which
calls the services itself and reads their answers) with one upstream pointed at a Pact
mock server. The public API is forwarded unchanged, so what the gateway depends on is
what its pages read, and what SPEC.md's public API promises clients: those fields are
the pacts' (contracts/pacts/gateway-*.json)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bazaar.platform.tokens import TokenVerifier
from bazaar.services.gateway.bootstrap import build_app
from bazaar.services.gateway.settings import GatewaySettings
from bazaar.testing import TokenMinter, free_port

from .pacts import keep, new_pact, pact

match = pact.match
JSON = "application/json"
PROBLEM = "application/problem+json"
USER = "u-ada"
# The pacts hold an example token; the mock server takes any bearer token.
BEARER = match.regex("Bearer eyJ-a-token", regex=r"^Bearer \S+$")
ORIGIN = {"Origin": "http://gateway"}  # the storefront's CSRF check


@asynccontextmanager
async def gateway(tmp_path: Path, minter: TokenMinter, **upstream: Any) -> AsyncIterator[Any]:
    """The gateway with `upstream` (e.g. catalog_url=...) at the mock server; every other
    upstream at a port where nothing listens."""
    nowhere = {
        f"{name}_url": f"http://127.0.0.1:{free_port()}"
        for name in ("auth", "catalog", "cart", "order")
    }
    settings = GatewaySettings(
        home=tmp_path,
        environment="test",
        inventory_addr=f"127.0.0.1:{free_port()}",
        **{**nowhere, **{key: str(url) for key, url in upstream.items()}},
    )
    app = build_app(settings, token_verifier=minter.verifier())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        yield client


def session(minter: TokenMinter) -> dict[str, str]:
    return {"bazaar_session": minter.token(USER, email="ada@example.com")}


# -- catalog ------------------------------------------------------------------------------

PRODUCT = {
    "id": match.str("p-tea"),
    "name": match.str("Green tea"),
    "description": match.str("Loose leaf, 100 g"),
    "category": match.str("kitchen"),
    "price_cents": match.int(450),
    "stock": match.int(7),
    "image_url": match.str("/static/tea.png"),
}


async def test_gateway_reads_the_catalog(tmp_path: Path) -> None:
    catalog = new_pact("gateway", "catalog")
    (
        catalog.upon_receiving("the storefront's first page of products")
        .given("p-tea is in the catalog")
        .with_request("GET", "/api/products")
        .with_query_parameters({"page": "1", "page_size": "12"})
        .will_respond_with(200)
        .with_body(
            {
                "items": match.each_like(PRODUCT),
                "total": match.int(1),
                "page": match.int(1),
                "page_size": match.int(12),
            },
            content_type=JSON,
        )
    )
    (
        catalog.upon_receiving("the categories")
        .given("p-tea is in the catalog")
        .with_request("GET", "/api/categories")
        .will_respond_with(200)
        .with_body(
            {
                "items": match.each_like(
                    {"slug": match.str("kitchen"), "name": match.str("Kitchen")}
                )
            },
            content_type=JSON,
        )
    )
    (
        catalog.upon_receiving("a product")
        .given("p-tea is in the catalog")
        .with_request("GET", "/api/products/p-tea")
        .will_respond_with(200)
        .with_body(PRODUCT, content_type=JSON)
    )
    (
        catalog.upon_receiving("a product that does not exist")
        .given("p-gone is not in the catalog")
        .with_request("GET", "/api/products/p-gone")
        .will_respond_with(404)
        .with_header("Content-Type", PROBLEM)
    )
    minter = TokenMinter()
    with catalog.serve() as server:
        async with gateway(tmp_path, minter, catalog_url=server.url) as client:
            home = await client.get("/")
            assert home.status_code == 200 and "Green tea" in home.text and "$4.50" in home.text
            assert "Kitchen" in home.text
            product = await client.get("/products/p-tea")
            assert product.status_code == 200 and "Loose leaf, 100 g" in product.text
            assert (await client.get("/products/p-gone")).status_code == 404
    keep(catalog, tmp_path)


# -- cart ---------------------------------------------------------------------------------

CART = {
    "user_id": match.str(USER),
    "items": match.each_like(
        {
            "product_id": match.str("p-tea"),
            "name": match.str("Green tea"),
            "unit_price_cents": match.int(450),
            "qty": match.int(2),
            "line_total_cents": match.int(900),
        }
    ),
    "total_cents": match.int(900),
    "item_count": match.int(2),
}


async def test_gateway_reads_and_fills_carts(tmp_path: Path) -> None:
    carts = new_pact("gateway", "cart")
    (
        carts.upon_receiving("the cart of the user")
        .given("u-ada has 2 of p-tea in the cart")
        .with_request("GET", "/api/cart")
        .with_header("Authorization", BEARER)
        .will_respond_with(200)
        .with_body(CART, content_type=JSON)
    )
    (
        carts.upon_receiving("adding a product to the cart")
        .given("p-tea can be bought")
        .with_request("POST", "/api/cart/items")
        .with_header("Authorization", BEARER)
        .with_body({"product_id": "p-tea", "qty": 2}, content_type=JSON)
        .will_respond_with(200)
        .with_body(CART, content_type=JSON)
    )
    minter = TokenMinter()
    with carts.serve() as server:
        async with gateway(tmp_path, minter, cart_url=server.url) as client:
            client.cookies.update(session(minter))
            page = await client.get("/cart")
            assert page.status_code == 200 and "Green tea" in page.text and "$9.00" in page.text
            added = await client.post(
                "/cart/items", data={"product_id": "p-tea", "qty": "2"}, headers=ORIGIN
            )
            assert added.status_code == 303 and added.headers["location"] == "/cart"
    keep(carts, tmp_path)


# -- auth ---------------------------------------------------------------------------------

# A fixed key: the pact's example JWKS must sign the token the gateway verifies, and stay
# the same from run to run.
EXAMPLE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
EXAMPLE_KID = "example-kid"


def example_jwk() -> dict[str, str]:
    raw = EXAMPLE_KEY.public_key().public_bytes_raw()
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": EXAMPLE_KID,
        "alg": "EdDSA",
        "use": "sig",
    }


def example_token() -> str:
    minter = TokenMinter()
    minter._key, minter.kid = EXAMPLE_KEY, EXAMPLE_KID
    return minter.token(USER, email="ada@example.com")


TOKEN_ANSWER = {
    "access_token": match.str("eyJ-a-token"),
    "token_type": "bearer",
    "user": {
        "id": match.str(USER),
        "email": match.str("ada@example.com"),
        "name": match.str("Ada"),
        "roles": match.each_like("customer"),
    },
}


def login(auth: Any, password: str, status: int) -> None:
    interaction = (
        auth.upon_receiving(f"a login that is answered {status}")
        .given("ada@example.com signed up with the password 'correct horse'")
        .with_request("POST", "/api/auth/login")
        .with_body({"email": "ada@example.com", "password": password}, content_type=JSON)
        .will_respond_with(status)
    )
    if status == 200:
        interaction.with_body(TOKEN_ANSWER, content_type=JSON)
    else:
        interaction.with_header("Content-Type", PROBLEM)


async def test_gateway_signs_visitors_up_and_in(tmp_path: Path) -> None:
    auth = new_pact("gateway", "auth")
    (
        auth.upon_receiving("a signup")
        .given("nobody signed up with new@example.com")
        .with_request("POST", "/api/auth/signup")
        .with_body(
            {"email": "new@example.com", "password": "correct horse", "name": "Ada"},
            content_type=JSON,
        )
        .will_respond_with(201)
        .with_body(TOKEN_ANSWER, content_type=JSON)
    )
    login(auth, "correct horse", 200)
    login(auth, "wrong horse", 401)
    (
        auth.upon_receiving("the signing keys")
        .given("auth has a signing key")
        .with_request("GET", "/.well-known/jwks.json")
        .will_respond_with(200)
        .with_body(
            {
                "keys": match.each_like(
                    {name: match.str(value) for name, value in example_jwk().items()}
                )
            },
            content_type=JSON,
        )
    )
    minter = TokenMinter()
    with auth.serve() as server:
        async with gateway(tmp_path, minter, auth_url=server.url) as client:
            form = {"email": "new@example.com", "password": "correct horse", "name": "Ada"}
            signed_up = await client.post("/signup", data=form, headers=ORIGIN)
            assert signed_up.status_code == 303 and "bazaar_session" in signed_up.cookies
            form = {"email": "ada@example.com", "password": "correct horse"}
            logged_in = await client.post("/login", data=form, headers=ORIGIN)
            assert logged_in.status_code == 303
            form["password"] = "wrong horse"
            refused = await client.post("/login", data=form, headers=ORIGIN)
            assert refused.status_code == 401 and "Wrong email or password" in refused.text
        # Tokens are verified against auth's JWKS by every service (platform/tokens.py).
        verifier = TokenVerifier(jwks_url=f"{server.url}/.well-known/jwks.json")
        principal = await verifier.verify(example_token())
        assert principal.user_id == USER
    keep(auth, tmp_path)


# -- order --------------------------------------------------------------------------------

generate = pact.generate
# Examples only: the order service makes its ids (UUIDs), so the provider verification
# injects the id of the order its provider state made (`${order_id}`, see
# test_pact_providers.py) wherever the consumer sends one back.
EXAMPLE_ORDER = "0b6f3c52-4b7e-4c1d-9a0e-5f1f2a3b4c5d"
# Not a UUID, so that the path regex of the order interaction does not take it.
MISSING_ORDER = "o-gone"
CHECKOUT_KEY = "checkout-0001"
ISO_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
WHEN = match.regex("2024-05-01T12:30:00Z", regex=ISO_TIME)
# The storefront's order page says something different for each: a value it decides on.
STATUS = match.regex("paid", regex=r"^(pending|paid|cancelled)$")


def injected_order_id(example: str = EXAMPLE_ORDER) -> Any:
    """The id of the order the provider state made (an example for the mock server)."""
    return match.type(example, generator=generate.provider_state("${order_id}"))


def order_path() -> Any:
    """`/api/orders/<the id>`: a regex (not a type match, which any path would pass)."""
    return match.matcher.GenericMatcher(
        "regex",
        f"/api/orders/{EXAMPLE_ORDER}",
        generator=generate.provider_state("/api/orders/${order_id}"),
        regex=r"^/api/orders/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$",
    )


def paid_order() -> dict[str, Any]:
    return {
        "id": injected_order_id(),
        "status": "paid",
        "reason": None,
        "items": match.each_like(
            {
                "product_id": match.str("p-tea"),
                "name": match.str("Green tea"),
                "qty": match.int(2),
                "unit_price_cents": match.int(450),
            }
        ),
        "total_cents": match.int(900),
        "created_at": WHEN,
        "updated_at": WHEN,
    }


async def test_gateway_checks_out_and_shows_orders(tmp_path: Path) -> None:
    orders = new_pact("gateway", "order")
    (
        orders.upon_receiving("a checkout")
        .given("u-ada has 2 of p-tea in the cart")
        .with_request("POST", "/api/checkout")
        .with_header("Authorization", BEARER)
        .with_header("Idempotency-Key", match.regex(CHECKOUT_KEY, regex=r"^[A-Za-z0-9-]{8,64}$"))
        .will_respond_with(201)
        .with_body(
            {"order_id": match.str(EXAMPLE_ORDER), "status": match.str("pending")},
            content_type=JSON,
        )
    )
    (
        orders.upon_receiving("the orders of the user")
        .given("u-ada has a paid order")
        .with_request("GET", "/api/orders")
        .with_header("Authorization", BEARER)
        .will_respond_with(200)
        .with_body(
            {
                "items": match.each_like(
                    {
                        "id": match.str(EXAMPLE_ORDER),
                        "status": STATUS,
                        "total_cents": match.int(900),
                        "created_at": WHEN,
                    }
                )
            },
            content_type=JSON,
        )
    )
    (
        orders.upon_receiving("a paid order")
        .given("u-ada has a paid order")
        .with_request("GET", order_path())
        .with_header("Authorization", BEARER)
        .will_respond_with(200)
        .with_body(paid_order(), content_type=JSON)
    )
    (
        orders.upon_receiving("an order that does not exist")
        .given("u-ada has no order o-gone")
        .with_request("GET", f"/api/orders/{MISSING_ORDER}")
        .with_header("Authorization", BEARER)
        .will_respond_with(404)
        .with_header("Content-Type", PROBLEM)
    )
    minter = TokenMinter()
    with orders.serve() as server:
        async with gateway(tmp_path, minter, order_url=server.url) as client:
            client.cookies.update(session(minter))
            placed = await client.post("/checkout", data={"key": CHECKOUT_KEY}, headers=ORIGIN)
            assert placed.status_code == 303
            assert placed.headers["location"] == f"/orders/{EXAMPLE_ORDER}"
            listed = await client.get("/orders")
            assert listed.status_code == 200 and EXAMPLE_ORDER in listed.text
            assert "$9.00" in listed.text and "2024-05-01 12:30" in listed.text
            shown = await client.get(f"/orders/{EXAMPLE_ORDER}")
            assert shown.status_code == 200 and "Green tea" in shown.text
            missing = await client.get(f"/orders/{MISSING_ORDER}")
            assert missing.status_code == 404 and "no such order" in missing.text
    keep(orders, tmp_path)
