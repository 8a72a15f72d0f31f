"""Shoppers of the public API, through the gateway: sign up, fill a cart, check out, and
follow the order to its final status by polling GET /api/orders/{id}.

An order's `updated_at` once it is `paid` is when the saga marked it paid, on the same
clock as this process: the bench reads paid times from it, so how promptly the follower
notices costs no precision. (Following the order's event stream instead would cost the
order service a database read every 0.2 s per open stream: at saturation, where orders
take seconds, more than the orders themselves.)
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bazaar.platform.clients import ServiceTransport

ADMIN = {"email": "admin@bazaar.local", "password": "bazaar-admin-2026"}
PASSWORD = "bench passphrase 2026"
FINAL = {"paid", "cancelled"}
STOCK_DELTA = 1_000_000
TRANSIENT = {409, 429, 502, 503, 504}  # a lost cart race, a limit, a neighbour restarting
ATTEMPTS = 8


class ShopError(Exception):
    """The API answered something the bench cannot go on from."""


@dataclass
class Shopper:
    email: str
    token: str
    product_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Placed:
    """One checkout: when it was meant to start (wall clock), and how it ended."""

    shopper: Shopper
    start: float
    order_id: str = ""
    accepted_after: float = 0.0  # seconds from `start` to the 201
    status: str = "unfinished"
    reason: str | None = None
    final_at: float = 0.0  # wall clock, from the order's updated_at
    units: int = 0

    @property
    def latency(self) -> float:
        return self.final_at - self.start


@dataclass
class Counters:
    retries: dict[int | str, int] = field(default_factory=dict)

    def retried(self, why: int | str) -> None:
        self.retries[why] = self.retries.get(why, 0) + 1


def client(base_url: str, connections: int) -> httpx.AsyncClient:
    # The platform's own transport (aiohttp's pool under httpx): the load generator shares
    # the cores with the platform, so it should take as little of them as it can.
    # Keep-alive below the servers' 5 s: never reuse a connection they closed.
    transport = ServiceTransport(max_connections=connections, keepalive_seconds=3.0)
    return httpx.AsyncClient(base_url=base_url, timeout=30.0, transport=transport, trust_env=False)


async def call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    expect: int,
    counters: Counters,
    **kwargs: Any,
) -> Any:
    """One API call that rides out dropped connections and transient answers (safe: every
    write the bench sends is idempotent or keyed)."""
    for attempt in range(ATTEMPTS):
        response: httpx.Response | None = None
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            counters.retried(type(exc).__name__)
        else:
            if response.status_code == expect:
                return response.json()
            if response.status_code not in TRANSIENT:
                raise ShopError(f"{method} {path}: {response.status_code} {response.text[:300]}")
            counters.retried(response.status_code)
        await asyncio.sleep(_retry_after(response, attempt))
    raise ShopError(f"{method} {path}: no success after {ATTEMPTS} attempts")


def _retry_after(response: httpx.Response | None, attempt: int) -> float:
    if response is not None:
        try:
            return min(float(response.headers.get("retry-after", "")), 5.0)
        except ValueError:
            pass
    return min(0.05 * 2**attempt, 2.0)


async def admin_token(http: httpx.AsyncClient, counters: Counters) -> str:
    body = await call(http, "POST", "/api/auth/login", 200, counters, json=ADMIN)
    return str(body["access_token"])


async def products(http: httpx.AsyncClient, counters: Counters) -> list[str]:
    page = await call(http, "GET", "/api/products", 200, counters, params={"page_size": 100})
    return [item["id"] for item in page["items"]]


async def stock_up(
    http: httpx.AsyncClient, token: str, product_ids: list[str], counters: Counters
) -> None:
    """Enough stock that no bench order is ever out of stock."""
    for product_id in product_ids:
        await call(
            http,
            "PUT",
            f"/api/admin/products/{product_id}/stock",
            200,
            counters,
            json={"delta": STOCK_DELTA},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
        )


async def sign_up(
    http: httpx.AsyncClient, count: int, product_ids: list[str], counters: Counters
) -> list[Shopper]:
    """`count` new users, each with one product in the cart. Password hashing is deliberately
    slow (argon2id), so this goes two at a time: the auth service has two cores at most."""
    gate = asyncio.Semaphore(2)
    run = uuid.uuid4().hex[:8]

    async def one(number: int) -> Shopper:
        email = f"bench-{run}-{number}@example.com"
        async with gate:
            body = await call(
                http,
                "POST",
                "/api/auth/signup",
                201,
                counters,
                json={"email": email, "password": PASSWORD, "name": f"Bench Shopper {number}"},
            )
        shopper = Shopper(email, body["access_token"], product_ids[number % len(product_ids)])
        await fill_cart(http, shopper, counters)
        return shopper

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def fill_cart(http: httpx.AsyncClient, shopper: Shopper, counters: Counters) -> None:
    await call(
        http,
        "POST",
        "/api/cart/items",
        200,
        counters,
        json={"product_id": shopper.product_id, "qty": 1},
        headers=shopper.auth,
    )


async def checkout(http: httpx.AsyncClient, placed: Placed, counters: Counters) -> None:
    headers = {**placed.shopper.auth, "Idempotency-Key": uuid.uuid4().hex}
    body = await call(http, "POST", "/api/checkout", 201, counters, headers=headers)
    placed.order_id = body["order_id"]
    placed.accepted_after = time.time() - placed.start


class Follower:
    """When to look at an order: first after about the latency the last orders had (the
    paid time is read from the order, so looking late loses no precision and looking
    early only costs requests), then every so often."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=64)

    def first_look(self) -> float:
        if not self._recent:
            return 0.3
        return max(0.1, 0.9 * statistics.median(self._recent))

    def observed(self, seconds: float) -> None:
        self._recent.append(seconds)


async def follow(
    http: httpx.AsyncClient,
    placed: Placed,
    follower: Follower,
    deadline: float,
    counters: Counters,
) -> None:
    """Poll the order until it is final (or the deadline passed), as a client would."""
    path = f"/api/orders/{placed.order_id}"
    await asyncio.sleep(max(0.0, placed.start + follower.first_look() - time.time()))
    pause = 0.25
    while True:
        order = await call(http, "GET", path, 200, counters, headers=placed.shopper.auth)
        if order["status"] in FINAL:
            break
        if time.time() > deadline:
            return
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 2.0)
    placed.status = order["status"]
    placed.reason = order.get("reason")
    placed.final_at = datetime.fromisoformat(order["updated_at"]).timestamp()
    placed.units = sum(item["qty"] for item in order["items"])
    follower.observed(placed.final_at - placed.start)
