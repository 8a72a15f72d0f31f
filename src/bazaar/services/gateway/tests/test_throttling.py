"""The gateway's limits: checkouts per user (API and storefront share one budget), body
size, and the client address the services get from the storefront's own calls."""

from __future__ import annotations

import httpx
from fastapi import Request
from starlette.responses import Response

from bazaar.services.gateway.settings import GatewaySettings
from bazaar.services.gateway.tests.fakes import UPSTREAMS, ClientFactory, EchoUpstream, FakeShop
from bazaar.services.gateway.tests.test_storefront import log_in
from bazaar.testing import TokenMinter

CREATED = b'{"order_id": "o-1", "status": "pending"}'


def created(_: Request) -> Response:
    return Response(CREATED, 201, media_type="application/json")


async def test_a_checkout_flood_from_one_user_is_throttled(
    make_client: ClientFactory, settings: GatewaySettings, minter: TokenMinter
) -> None:
    echo = {name: EchoUpstream(name) for name in UPSTREAMS}
    echo["order"].answer = created
    transports = {name: httpx.ASGITransport(app=app) for name, app in echo.items()}
    tight = settings.model_copy(update={"checkout_rate": "3 per minute"})
    flooder, bystander = minter.headers("u-flood"), minter.headers("u-other")
    async with make_client(transports, settings_=tight) as api:
        answers = [await api.post("/api/checkout", headers=flooder) for _ in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
        refused = answers[-1]
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert "checkout" in refused.json()["detail"]
        assert len(echo["order"].seen) == 3  # the refused ones never reached the order service
        assert (await api.post("/api/checkout", headers=bystander)).status_code == 201
        # Without a valid token nothing is counted here: the order service answers 401.
        forged = {"Authorization": "Bearer not.a.token"}
        assert (await api.post("/api/checkout", headers=forged)).status_code == 201


async def test_the_storefront_checkout_shares_the_budget(
    make_client: ClientFactory, settings: GatewaySettings, shop: FakeShop
) -> None:
    tight = settings.model_copy(update={"checkout_rate": "2 per minute"})
    transports = {name: httpx.ASGITransport(app=app) for name, app in shop.apps().items()}
    async with make_client(transports, settings_=tight) as store:
        await log_in(store)
        for n in range(2):
            await store.post("/cart/items", data={"product_id": "p1", "qty": "1"})
            placed = await store.post("/checkout", data={"key": f"key-{n}-123456789"})
            assert placed.status_code == 303
        await store.post("/cart/items", data={"product_id": "p1", "qty": "1"})
        third = await store.post("/checkout", data={"key": "key-3-123456789"})
        assert third.status_code == 429
        assert third.headers["content-type"].startswith("text/html")
        assert "wait a moment" in third.text
        assert len(shop.orders) == 2


async def test_storefront_calls_tell_auth_the_visitors_address(
    make_client: ClientFactory, shop: FakeShop
) -> None:
    seen: list[str] = []
    apps = shop.apps()
    auth = apps["auth"]

    async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            seen.append(dict(scope["headers"]).get(b"x-forwarded-for", b"").decode())
        await auth(scope, receive, send)

    transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}
    transports["auth"] = httpx.ASGITransport(app=recording)
    async with make_client(transports) as store:
        await store.post(
            "/login",
            data={"email": "ada@example.com", "password": "correct horse"},
            headers={"X-Forwarded-For": "198.51.100.23"},
        )
    # The visitor's claim, then the peer the gateway saw (the services decide whom to trust).
    assert seen and seen[-1].startswith("198.51.100.23, ")


async def test_a_body_over_the_limit_is_413_before_any_upstream_sees_it(
    make_client: ClientFactory, settings: GatewaySettings
) -> None:
    echo = {name: EchoUpstream(name) for name in UPSTREAMS}
    transports = {name: httpx.ASGITransport(app=app) for name, app in echo.items()}
    async with make_client(transports) as api:
        big = {"email": "a@example.com", "password": "x" * settings.max_body_bytes}
        answer = await api.post("/api/auth/signup", json=big)
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/problem+json"
        assert not echo["auth"].seen
        ok = await api.post("/api/auth/signup", json={"email": "a@example.com"})
        assert ok.status_code == 200 and isinstance(ok.json(), dict)
    assert settings.max_body_bytes == 64 * 1024
