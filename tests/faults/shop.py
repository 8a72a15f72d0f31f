"""What the fault tests do to the platform, as its clients would: sign shoppers up, fill
their carts, check out many at once (retrying through outages with the same
Idempotency-Key, which is what the key is for) and follow every order to a final state.

Everything goes over HTTP on loopback to real processes; nothing here imports a service.
Only the watching is done from the side: the order and cart databases are read,
read-only, to see orders become final and order.created events reach the cart. Polling
hundreds of orders through the gateway instead would take a good share of two cores from
the processes under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_EMAIL = "admin@bazaar.local"
ADMIN_PASSWORD = "bazaar-admin-2026"  # the demo admin (src/bazaar/runner/demo/users.json)
FINAL = frozenset({"paid", "cancelled"})
# What a client retries: the gateway or a service behind it is down, restarting, or
# overloaded for a moment.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class GaveUp(AssertionError):
    """A request kept failing for longer than the test's patience."""


def client(base_url: str, *, timeout: float = 10.0) -> httpx.AsyncClient:
    """A loopback client (no proxy from the environment), with room for many at once."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        trust_env=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
    )


async def persist(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    ok: Iterable[int] = (200,),
    patience: float = 60.0,
    what: str = "request",
) -> httpx.Response:
    """Send until the answer is one of `ok`; retry transport errors and RETRY_STATUS with
    a short backoff; fail at once on any other answer, or after `patience` seconds.
    Only for requests that may be repeated (reads, and writes with an idempotency key)."""
    wanted = set(ok)
    give_up_at = time.monotonic() + patience
    pause = 0.1
    last = "nothing yet"
    while True:
        try:
            response = await send()
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code in wanted:
                return response
            last = f"{response.status_code} {response.text[:300]}"
            if response.status_code not in RETRY_STATUS:
                raise AssertionError(f"{what}: {last}")
        if time.monotonic() + pause > give_up_at:
            raise GaveUp(f"{what} failed for {patience} s; last: {last}")
        await asyncio.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 1.0)


# --- shoppers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shopper:
    email: str
    headers: dict[str, str]


async def sign_up(api: httpx.AsyncClient) -> Shopper:
    email = f"shopper-{uuid.uuid4().hex[:16]}@example.com"
    credentials = {"email": email, "password": "a long passphrase 42"}
    response = await persist(
        lambda: api.post("/api/auth/signup", json={**credentials, "name": "Sam Shopper"}),
        ok={201, 409},  # 409: an earlier try went through after all
        what=f"signup of {email}",
    )
    if response.status_code == 409:
        response = await persist(
            lambda: api.post("/api/auth/login", json=credentials), what=f"login of {email}"
        )
    return Shopper(email, {"Authorization": f"Bearer {response.json()['access_token']}"})


async def sign_up_many(api: httpx.AsyncClient, count: int, *, at_once: int = 3) -> list[Shopper]:
    """`count` new shoppers; a signup hashes a password (argon2id, CPU and 64 MiB each),
    so a few at a time go fastest."""
    gate = asyncio.Semaphore(at_once)

    async def one() -> Shopper:
        async with gate:
            return await sign_up(api)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def admin(api: httpx.AsyncClient) -> dict[str, str]:
    response = await persist(
        lambda: api.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ),
        what="admin login",
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# --- carts --------------------------------------------------------------------------------


async def cart_of(api: httpx.AsyncClient, shopper: Shopper) -> dict[str, Any]:
    response = await persist(lambda: api.get("/api/cart", headers=shopper.headers), what="cart")
    cart: dict[str, Any] = response.json()
    return cart


def quantities(cart: dict[str, Any]) -> dict[str, int]:
    return {item["product_id"]: item["qty"] for item in cart["items"]}


async def set_cart(
    api: httpx.AsyncClient, shopper: Shopper, lines: dict[str, int], patience: float = 90.0
) -> None:
    """Make the cart hold `lines` (product id -> qty).

    Adding to a cart is not idempotent, and under faults an add whose answer was lost may
    still land later (the gateway gave up on it, the cart did not). So every line is set
    to its quantity, not added: a PATCH where the product is in the cart already, a POST
    where it is not, each followed by a fresh look whenever the answer is in doubt."""
    give_up_at = time.monotonic() + patience
    have = quantities(await cart_of(api, shopper))
    while any(have.get(p) != qty for p, qty in lines.items()):
        product_id, qty = next((p, q) for p, q in lines.items() if have.get(p) != q)
        try:
            if product_id in have:
                response = await api.patch(
                    f"/api/cart/items/{product_id}", json={"qty": qty}, headers=shopper.headers
                )
            else:
                response = await api.post(
                    "/api/cart/items",
                    json={"product_id": product_id, "qty": qty},
                    headers=shopper.headers,
                )
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            have = quantities(response.json())
            continue
        if response is not None and response.status_code not in {*RETRY_STATUS, 404}:
            raise AssertionError(f"setting {product_id} in a cart: {response.text}")
        if time.monotonic() > give_up_at:
            raise GaveUp(f"could not set the cart of {shopper.email} to {lines}")
        await asyncio.sleep(0.3)
        have = quantities(await cart_of(api, shopper))


async def set_carts(
    api: httpx.AsyncClient, shoppers: Iterable[Shopper], lines: dict[str, int], at_once: int = 20
) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(shopper: Shopper) -> None:
        async with gate:
            await set_cart(api, shopper, lines)

    await asyncio.gather(*(one(s) for s in shoppers))


# --- stock --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    on_hand: int
    reserved: int
    available: int


async def stock_levels(
    api: httpx.AsyncClient, admin_headers: dict[str, str], product_ids: Iterable[str]
) -> dict[str, Level]:
    """Inventory's own numbers (not the catalog's read model), through the admin API."""
    ids = list(product_ids)
    response = await persist(
        lambda: api.get("/api/admin/stock", params={"product_id": ids}, headers=admin_headers),
        what="stock levels",
        patience=30.0,
    )
    return {
        item["product_id"]: Level(item["on_hand"], item["reserved"], item["available"])
        for item in response.json()["items"]
    }


async def set_available(
    api: httpx.AsyncClient, admin_headers: dict[str, str], product_id: str, units: int
) -> None:
    """Make exactly `units` available (nothing may be reserved on it right now)."""
    level = (await stock_levels(api, admin_headers, [product_id]))[product_id]
    assert level.reserved == 0, f"{product_id} has reservations: {level}"
    delta = units - level.available
    if delta:
        response = await api.put(
            f"/api/admin/products/{product_id}/stock",
            json={"delta": delta},
            headers={**admin_headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 200, response.text
        assert response.json()["available"] == units, response.text


async def catalog_stock(api: httpx.AsyncClient, product_id: str) -> int:
    response = await persist(lambda: api.get(f"/api/products/{product_id}"), what="product")
    stock: int = response.json()["stock"]
    return stock


async def products(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await persist(lambda: api.get("/api/products", params={"page_size": 100}))
    return sorted(response.json()["items"], key=lambda p: p["id"])


class StockSampler:
    """Samples inventory's stock of some products as fast as it answers, in the background,
    and remembers the lowest numbers seen (a race must never take them below zero)."""

    def __init__(
        self, api: httpx.AsyncClient, admin_headers: dict[str, str], product_ids: Iterable[str]
    ) -> None:
        self._api = api
        self._headers = admin_headers
        self._ids = list(product_ids)
        self.samples = 0
        self.lowest_available: dict[str, int] = {}
        self.broken: list[tuple[str, Level]] = []  # reserved > on_hand, or anything < 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StockSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                response = await self._api.get(
                    "/api/admin/stock", params={"product_id": self._ids}, headers=self._headers
                )
            except httpx.TransportError:
                await asyncio.sleep(0.05)
                continue
            if response.status_code == 200:
                self.samples += 1
                for item in response.json()["items"]:
                    self._record(item["product_id"], Level(*(item[k] for k in _LEVEL_KEYS)))
            await asyncio.sleep(0.01)

    def _record(self, product_id: str, level: Level) -> None:
        low = self.lowest_available.get(product_id, level.available)
        self.lowest_available[product_id] = min(low, level.available)
        if min(level.on_hand, level.reserved, level.available) < 0 or (
            level.reserved > level.on_hand
        ):
            self.broken.append((product_id, level))


_LEVEL_KEYS = ("on_hand", "reserved", "available")


# --- watching from the side (read-only) ----------------------------------------------------


@contextlib.contextmanager
def read_only(home: Path, service: str) -> Iterator[sqlite3.Connection]:
    uri = f"{(home / f'{service}.db').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as db:
        yield db


def order_statuses(home: Path, order_ids: Collection[str]) -> dict[str, str]:
    """The orders' statuses as the order service's database has them right now."""
    if not order_ids:
        return {}
    with read_only(home, "order") as db:
        rows = db.execute("SELECT id, status FROM orders").fetchall()
    return {order_id: status for order_id, status in rows if order_id in order_ids}


def created_applied(home: Path, order_ids: Collection[str]) -> set[str]:
    """The orders whose order.created event the cart service has applied (its inbox)."""
    if not order_ids:
        return set()
    with read_only(home, "order") as db:
        events = db.execute(
            "SELECT event_id, json_extract(envelope, '$.data.order_id') FROM outbox"
            " WHERE event_type = 'order.created'"
        ).fetchall()
    with read_only(home, "cart") as db:
        applied = {e for (e,) in db.execute("SELECT event_id FROM inbox WHERE consumer = 'cart'")}
    return {order_id for event_id, order_id in events if event_id in applied} & set(order_ids)


# --- checkouts ----------------------------------------------------------------------------


@dataclass
class Batch:
    """A batch of checkouts and what became of them: the order ids the checkouts returned,
    when the watcher saw each order final and its order.created applied by the cart, and
    each order as the API shows it at the end."""

    started: float = field(default_factory=time.monotonic)
    owners: dict[str, Shopper] = field(default_factory=dict)  # order id -> shopper
    final_at: dict[str, float] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)  # order.created reached the cart
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # order id -> order
    submitted: int = 0  # checkouts started
    returned: int = 0  # checkouts answered 201
    retried: int = 0  # checkouts that needed more than one try

    @property
    def in_flight(self) -> int:
        """Checkouts started whose order is not known to be final yet."""
        return self.submitted - len(self.final_at)

    def last_final_at(self) -> float:
        return max(self.final_at.values(), default=self.started)

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.final.values():
            status = order["status"] + (f"/{order['reason']}" if order["reason"] else "")
            counts[status] = counts.get(status, 0) + 1
        return dict(sorted(counts.items()))

    async def applied_by_cart(self, order_id: str, patience: float = 90.0) -> None:
        give_up_at = time.monotonic() + patience
        while order_id not in self.applied:
            if time.monotonic() > give_up_at:
                raise GaveUp(f"order.created of {order_id} not applied by the cart in time")
            await asyncio.sleep(0.1)


async def checkout(
    api: httpx.AsyncClient, shopper: Shopper, batch: Batch, *, patience: float = 90.0
) -> str:
    """One checkout, retried with the same Idempotency-Key until it answers 201."""
    key = uuid.uuid4().hex
    tries = 0

    async def send() -> httpx.Response:
        nonlocal tries
        tries += 1
        return await api.post("/api/checkout", headers={**shopper.headers, "Idempotency-Key": key})

    batch.submitted += 1
    response = await persist(send, ok={201}, patience=patience, what="checkout")
    order_id: str = response.json()["order_id"]
    assert order_id not in batch.owners, f"two checkouts got order {order_id}"
    batch.owners[order_id] = shopper
    batch.returned += 1
    batch.retried += tries > 1
    return order_id


async def check_out_all(
    api: httpx.AsyncClient,
    shoppers: Iterable[Shopper],
    lines: dict[str, int],
    batch: Batch,
    *,
    rounds: int,
    after_each: Callable[[Batch], Awaitable[None]] | None = None,
) -> None:
    """Every shopper, all at once, `rounds` times: check out, and before the next round
    wait for the order's order.created to reach the cart (so that the next order does not
    take this one's lines again) and set the cart to `lines` again. `after_each` runs each
    time a checkout returned (the fault tests strike from there)."""

    async def shop(shopper: Shopper) -> None:
        previous: str | None = None
        for _ in range(rounds):
            if previous:
                await batch.applied_by_cart(previous)
                await set_cart(api, shopper, lines)
            previous = await checkout(api, shopper, batch)
            if after_each:
                await after_each(batch)

    await asyncio.gather(*(shop(s) for s in shoppers))


async def watch(home: Path, batch: Batch, *, until_returned: int, patience: float) -> None:
    """Watch the batch's orders until `until_returned` checkouts returned and every one of
    their orders is final; fail naming the orders still pending after `patience` s."""
    give_up_at = time.monotonic() + patience
    while True:
        pending = {o for o in batch.owners if o not in batch.final_at}
        unapplied = {o for o in batch.owners if o not in batch.applied}
        statuses = await asyncio.to_thread(order_statuses, home, pending)
        batch.applied |= await asyncio.to_thread(created_applied, home, unapplied)
        now = time.monotonic()
        for order_id, status in statuses.items():
            if status in FINAL:
                batch.final_at[order_id] = now
                pending.discard(order_id)
        if batch.returned >= until_returned and not pending:
            return
        if now > give_up_at:
            raise AssertionError(
                f"{len(pending)} orders not final after {patience} s "
                f"({batch.returned}/{until_returned} checkouts returned): {sorted(pending)[:5]}"
            )
        await asyncio.sleep(0.25)


async def read_orders(api: httpx.AsyncClient, batch: Batch) -> None:
    """Every order of the batch as its owner sees it through the API; all must be final."""
    gate = asyncio.Semaphore(16)

    async def read(order_id: str) -> None:
        async with gate:
            response = await persist(
                lambda: api.get(f"/api/orders/{order_id}", headers=batch.owners[order_id].headers),
                what=f"order {order_id}",
            )
        order = response.json()
        assert order["status"] in FINAL, order
        batch.final[order_id] = order

    await asyncio.gather(*(read(o) for o in batch.owners))


async def run_batch(
    api: httpx.AsyncClient,
    home: Path,
    shoppers: list[Shopper],
    lines: dict[str, int],
    *,
    rounds: int = 1,
    after_each: Callable[[Batch], Awaitable[None]] | None = None,
    patience: float = 120.0,
    batch: Batch | None = None,
) -> Batch:
    """Check the shoppers out (their carts hold `lines` already) `rounds` times each,
    follow every order until final, then read each through the API. Pass `batch` to look
    at it while it runs."""
    batch = batch or Batch()
    watcher = asyncio.create_task(
        watch(home, batch, until_returned=len(shoppers) * rounds, patience=patience)
    )
    try:
        await check_out_all(api, shoppers, lines, batch, rounds=rounds, after_each=after_each)
        await watcher
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    await read_orders(api, batch)
    return batch
