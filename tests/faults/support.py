"""What the fault tests do to the platform, as a client would: sign shoppers up, fill
their carts, check out many at once (retrying through outages with the same
Idempotency-Key, which is what the key is for), follow every order to a final state,
and check the promises of the checkout saga afterwards through the public and internal
APIs and the mailbox.

Everything talks HTTP over loopback to real processes; nothing here imports a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import random
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx

ADMIN_EMAIL = "admin@bazaar.local"
ADMIN_PASSWORD = "bazaar-admin-2026"  # the demo admin (src/bazaar/runner/demo/users.json)
FINAL = frozenset({"paid", "cancelled"})
# What a client retries with the same key: the gateway or a service behind it is down,
# restarting, or overloaded for a moment.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
ORDER_ID_IN_MAIL = re.compile(r"Order id: ([0-9a-f-]{36})")


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
    a short backoff; fail at once on any other answer, or after `patience` seconds."""
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


async def fill_carts(
    api: httpx.AsyncClient, shoppers: Iterable[Shopper], lines: dict[str, int], at_once: int = 20
) -> None:
    """Put exactly `lines` (product id -> qty) into each shopper's (empty) cart."""
    gate = asyncio.Semaphore(at_once)

    async def fill(shopper: Shopper) -> None:
        async with gate:
            cart: dict[str, Any] = {}
            for product_id, qty in lines.items():
                response = await api.post(
                    "/api/cart/items",
                    json={"product_id": product_id, "qty": qty},
                    headers=shopper.headers,
                )
                assert response.status_code == 200, response.text
                cart = response.json()
            assert {i["product_id"]: i["qty"] for i in cart["items"]} == lines, cart

    await asyncio.gather(*(fill(s) for s in shoppers))


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
    and remembers the lowest numbers seen (the race must never take them below zero)."""

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
                    level = Level(item["on_hand"], item["reserved"], item["available"])
                    pid = item["product_id"]
                    low = self.lowest_available.get(pid, level.available)
                    self.lowest_available[pid] = min(low, level.available)
                    if min(level.on_hand, level.reserved, level.available) < 0 or (
                        level.reserved > level.on_hand
                    ):
                        self.broken.append((pid, level))
            await asyncio.sleep(0.01)


# --- checkouts ----------------------------------------------------------------------------


@dataclass
class Batch:
    """A batch of checkouts and what became of them: order ids as the checkouts returned
    them, and each order's final state as the poller saw it (with when)."""

    started: float = field(default_factory=time.monotonic)
    owners: dict[str, Shopper] = field(default_factory=dict)  # order id -> shopper
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # order id -> order
    final_at: dict[str, float] = field(default_factory=dict)
    submitted: int = 0  # checkouts started
    returned: int = 0  # checkouts answered 201
    retried: int = 0  # checkouts that needed more than one try

    @property
    def in_flight(self) -> int:
        """Checkouts started whose order is not known to be final yet."""
        return self.submitted - len(self.final_at)

    def last_final_at(self) -> float:
        return max(self.final_at.values(), default=self.started)

    def statuses(self) -> Counter[str]:
        return Counter(
            f"{o['status']}" + (f"/{o['reason']}" if o["reason"] else "")
            for o in self.final.values()
        )


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
    if tries > 1:
        batch.retried += 1
    return order_id


async def cart_emptied(api: httpx.AsyncClient, shopper: Shopper, patience: float = 90.0) -> None:
    """Wait until the shopper's cart is empty (its last order.created was applied)."""
    give_up_at = time.monotonic() + patience
    while True:
        try:
            response = await api.get("/api/cart", headers=shopper.headers)
            if response.status_code == 200 and not response.json()["items"]:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > give_up_at:
            raise GaveUp(f"the cart of {shopper.email} was not emptied within {patience} s")
        await asyncio.sleep(0.2)


async def fill_cart(
    api: httpx.AsyncClient, shopper: Shopper, lines: dict[str, int], patience: float = 90.0
) -> None:
    """Put `lines` into the shopper's empty cart. Adding is not idempotent, so a try whose
    answer was lost is checked against the cart before the next one."""
    for product_id, qty in lines.items():
        give_up_at = time.monotonic() + patience
        while True:
            try:
                response = await api.post(
                    "/api/cart/items",
                    json={"product_id": product_id, "qty": qty},
                    headers=shopper.headers,
                )
                if response.status_code == 200:
                    break
                assert response.status_code in RETRY_STATUS, response.text
            except httpx.TransportError:
                pass
            cart = await persist(lambda: api.get("/api/cart", headers=shopper.headers))
            if any(i["product_id"] == product_id for i in cart.json()["items"]):
                break  # the lost try went through
            if time.monotonic() > give_up_at:
                raise GaveUp(f"could not fill the cart of {shopper.email}")
            await asyncio.sleep(0.3)


async def check_out_all(
    api: httpx.AsyncClient,
    shoppers: Iterable[Shopper],
    lines: dict[str, int],
    batch: Batch,
    *,
    rounds: int,
    after_each: Callable[[Batch], Awaitable[None]] | None = None,
) -> None:
    """Every shopper, all at once, `rounds` times: fill the cart with `lines`, check out,
    wait for the cart to be emptied by the order's order.created event. `after_each` runs
    each time a checkout returned (the fault tests strike from there)."""

    async def shop(shopper: Shopper) -> None:
        for round_ in range(rounds):
            if round_:
                await cart_emptied(api, shopper)
                await fill_cart(api, shopper, lines)
            await checkout(api, shopper, batch)
            if after_each:
                await after_each(batch)

    await asyncio.gather(*(shop(s) for s in shoppers))


def order_statuses(home: Path, order_ids: Collection[str]) -> dict[str, str]:
    """The orders' statuses as the order service's database has them right now.

    Watching the database, read-only, costs the platform nothing; polling every order
    through the gateway would take a good share of two cores from the processes under
    test. The final answer is read through the API once (see `follow`)."""
    if not order_ids:
        return {}
    uri = f"{(home / 'order.db').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10.0)) as db:
        rows = db.execute("SELECT id, status FROM orders").fetchall()
    return {order_id: status for order_id, status in rows if order_id in order_ids}


async def follow(
    api: httpx.AsyncClient, home: Path, batch: Batch, *, until_returned: int, patience: float
) -> None:
    """Watch the batch's orders until `until_returned` checkouts returned and every one of
    their orders is final, then read each through the API; fail naming the orders still
    pending after `patience` s."""
    give_up_at = time.monotonic() + patience
    while True:
        pending = {o for o in batch.owners if o not in batch.final_at}
        statuses = await asyncio.to_thread(order_statuses, home, pending)
        now = time.monotonic()
        for order_id, status in statuses.items():
            if status in FINAL:
                batch.final_at[order_id] = now
                pending.discard(order_id)
        if batch.returned >= until_returned and not pending:
            break
        if now > give_up_at:
            raise AssertionError(
                f"{len(pending)} orders not final after {patience} s "
                f"({batch.returned}/{until_returned} checkouts returned): {sorted(pending)[:5]}"
            )
        await asyncio.sleep(0.25)
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
    """Check the shoppers out (their carts hold `lines` already) `rounds` times each, and
    follow every order until final. Pass `batch` to watch it while it runs."""
    batch = batch or Batch()
    follower = asyncio.create_task(
        follow(api, home, batch, until_returned=len(shoppers) * rounds, patience=patience)
    )
    try:
        await check_out_all(api, shoppers, lines, batch, rounds=rounds, after_each=after_each)
        await follower
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    return batch


# --- the promises, checked from outside ---------------------------------------------------


def mails_by_order(maildir: Path) -> dict[str, Counter[str]]:
    """order id -> how many mails of each kind ("confirmed", "cancelled") it got."""
    found: dict[str, Counter[str]] = {}
    parser = BytesParser(policy=email.policy.default)
    for folder in ("new", "cur"):
        for path in (maildir / folder).glob("*"):
            message = parser.parsebytes(path.read_bytes())
            body = message.get_body(preferencelist=("plain",))
            match = ORDER_ID_IN_MAIL.search(body.get_content() if body else "")
            if not match:
                continue
            kind = "confirmed" if "confirmed" in str(message["Subject"]) else "cancelled"
            found.setdefault(match.group(1), Counter())[kind] += 1
    return found


async def eventually(
    check: Callable[[], Awaitable[list[str]]], *, patience: float, what: str
) -> None:
    """Run `check` (it returns the problems it found) until it finds none."""
    give_up_at = time.monotonic() + patience
    while True:
        problems = await check()
        if not problems:
            return
        if time.monotonic() > give_up_at:
            raise AssertionError(
                f"{what}: {len(problems)} problems after {patience} s: {problems[:10]}"
            )
        await asyncio.sleep(0.5)


async def one_mail_per_final_order(maildir: Path, batch: Batch, patience: float = 30.0) -> None:
    """Every order of the batch got exactly one mail, of the kind its status says: no
    order.paid/order.cancelled event lost, none mailed twice."""

    async def check() -> list[str]:
        mails = mails_by_order(maildir)
        problems = []
        for order_id, order in batch.final.items():
            wanted = Counter({"confirmed" if order["status"] == "paid" else "cancelled": 1})
            got = mails.get(order_id, Counter())
            if got != wanted:
                problems.append(f"{order_id} ({order['status']}): mails {dict(got)}")
        return problems

    await eventually(check, patience=patience, what="one mail per order")


async def no_charge_left_unpaid(payment: httpx.AsyncClient, batch: Batch) -> None:
    """Paid orders are captured once for their total; cancelled ones hold no charge."""
    gate = asyncio.Semaphore(16)
    problems: list[str] = []

    async def check(order_id: str, order: dict[str, Any]) -> None:
        async with gate:
            response = await persist(
                lambda: payment.get(f"/internal/payments/{order_id}"), ok={200, 404}
            )
        charge = response.json() if response.status_code == 200 else None
        if order["status"] == "paid":
            if not charge or charge["status"] != "captured":
                problems.append(f"paid {order_id} has payment {charge}")
            elif charge["amount_cents"] != order["total_cents"]:
                problems.append(f"paid {order_id} charged {charge['amount_cents']}")
        elif charge and charge["status"] == "captured":
            problems.append(f"cancelled {order_id} ({order['reason']}) still charged")

    await asyncio.gather(*(check(o, order) for o, order in batch.final.items()))
    assert not problems, problems


async def carts_emptied(api: httpx.AsyncClient, shoppers: Iterable[Shopper]) -> None:
    """Every order.created reached the cart: each shopper's cart is empty again."""
    people = list(shoppers)

    async def check() -> list[str]:
        problems = []
        for shopper in people:
            response = await api.get("/api/cart", headers=shopper.headers)
            if response.status_code != 200 or response.json()["items"]:
                problems.append(f"{shopper.email}: {response.status_code} {response.text[:200]}")
        return problems

    await eventually(check, patience=30.0, what="carts emptied by order.created")


def sold(batch: Batch) -> Counter[str]:
    """Units of each product in the batch's paid orders."""
    units: Counter[str] = Counter()
    for order in batch.final.values():
        if order["status"] == "paid":
            for item in order["items"]:
                units[item["product_id"]] += item["qty"]
    return units


def summary(name: str, batch: Batch, *, fault_at: float | None, in_flight: int, **more: Any) -> str:
    """One line per fault for the report (pytest -s shows it)."""
    recovery = batch.last_final_at() - (fault_at if fault_at is not None else batch.started)
    extra = " ".join(f"{k}={v}" for k, v in more.items())
    return (
        f"FAULT {name}: {len(batch.owners)} checkouts, {in_flight} in flight at the fault, "
        f"{batch.retried} retried; every order final {recovery:.1f} s after it; "
        f"{dict(sorted(batch.statuses().items()))} {extra}"
    ).rstrip()


async def stock_accounts_for(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    before: dict[str, Level],
    batch: Batch,
    patience: float = 20.0,
) -> dict[str, Level]:
    """Inventory sold exactly what the paid orders hold, holds no reservation left over,
    and the catalog's read model caught up (no stock.changed event lost)."""
    units = sold(batch)

    async def check() -> list[str]:
        after = await stock_levels(api, admin_headers, before)
        problems = []
        for product_id, was in before.items():
            now = after[product_id]
            expected = was.on_hand - units[product_id]
            if (now.on_hand, now.reserved) != (expected, was.reserved):
                problems.append(
                    f"{product_id}: on hand {now.on_hand} (expected {expected}), "
                    f"reserved {now.reserved} (expected {was.reserved})"
                )
            shown = await catalog_stock(api, product_id)
            if shown != now.available:
                problems.append(f"{product_id}: catalog shows {shown}, inventory {now.available}")
        return problems

    await eventually(check, patience=patience, what="stock accounts")
    return await stock_levels(api, admin_headers, before)


def checker_findings(home: Path) -> list[str]:
    """What the platform's invariant checker finds in the home's databases."""
    try:
        from bazaar.runner.check import find_violations
    except ImportError:  # not landed yet: the checks above stand alone
        return []
    return [f"{v.kind} {v.subject}: {v.detail}" for v in find_violations(home)]
