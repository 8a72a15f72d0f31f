"""The checkout saga's promises (SPEC.md, "The checkout saga"), checked from outside after
a fault: through the public and internal APIs, the mailbox, the databases read-only, and
the platform's invariant checker. Each check names what it found wrong."""

from __future__ import annotations

import asyncio
import email.policy
import functools
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx

from bazaar.runner.check import find_violations

from .shop import Batch, Level, Shopper, catalog_stock, created_applied, persist, stock_levels

ORDER_ID_IN_MAIL = re.compile(r"Order id: ([0-9a-f-]{36})")


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


def checker_findings(home: Path) -> list[str]:
    """What the platform's invariant checker (`bazaar check`) finds in the home."""
    return [f"{v.kind} {v.subject}: {v.detail}" for v in find_violations(home)]


# --- mail: every order.paid / order.cancelled reached the customer, once -------------------


def mails_by_order(maildir: Path) -> dict[str, Counter[str]]:
    """order id -> how many mails of each kind ("confirmed", "cancelled") it got."""
    found: dict[str, Counter[str]] = {}
    for folder in ("new", "cur"):
        for path in (maildir / folder).glob("*"):
            about = _mail_about(path)
            if about:
                found.setdefault(about[0], Counter())[about[1]] += 1
    return found


@functools.cache
def _mail_about(path: Path) -> tuple[str, str] | None:
    """(order id, kind) of a stored mail; a Maildir file never changes, so parse it once."""
    message = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
    body = message.get_body(preferencelist=("plain",))
    match = ORDER_ID_IN_MAIL.search(body.get_content() if body else "")
    if not match:
        return None
    return match.group(1), "confirmed" if "confirmed" in str(message["Subject"]) else "cancelled"


async def one_mail_per_order(maildir: Path, batch: Batch, patience: float = 60.0) -> None:
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


# --- money: paid orders charged once, cancelled ones not at all ----------------------------


async def charged_once_or_not_at_all(payment: httpx.AsyncClient, batch: Batch) -> None:
    """A paid order's payment is captured for its total (one payment per order is the
    payment service's own constraint); a cancelled order holds no captured charge."""
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


# --- carts: every order.created reached the cart --------------------------------------------


async def created_reached_the_cart(home: Path, batch: Batch, patience: float = 60.0) -> None:
    """The cart service applied every order's order.created event (its inbox says so)."""

    async def check() -> list[str]:
        applied = await asyncio.to_thread(created_applied, home, set(batch.owners))
        return sorted(set(batch.owners) - applied)

    await eventually(check, patience=patience, what="order.created applied by the cart")


async def carts_emptied(api: httpx.AsyncClient, shoppers: Iterable[Shopper]) -> None:
    """Each shopper's cart is empty again: its order took every line out. (Only where no
    request was lost: an add whose answer a fault swallowed may land after the order.)"""
    people = list(shoppers)

    async def check() -> list[str]:
        problems = []
        for shopper in people:
            response = await api.get("/api/cart", headers=shopper.headers)
            if response.status_code != 200 or response.json()["items"]:
                problems.append(f"{shopper.email}: {response.status_code} {response.text[:200]}")
        return problems

    await eventually(check, patience=30.0, what="carts emptied by order.created")


# --- stock: sold exactly what was paid, nothing left reserved, the read model caught up ----


def sold(batch: Batch) -> Counter[str]:
    """Units of each product in the batch's paid orders."""
    units: Counter[str] = Counter()
    for order in batch.final.values():
        if order["status"] == "paid":
            for item in order["items"]:
                units[item["product_id"]] += item["qty"]
    return units


async def stock_accounts_for(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    before: dict[str, Level],
    batch: Batch,
    patience: float = 30.0,
) -> dict[str, Level]:
    """Inventory sold exactly what the paid orders hold and holds no reservation left
    over, and the catalog's read model caught up (no stock.changed event lost)."""
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


# --- the report -----------------------------------------------------------------------------


def summary(name: str, batch: Batch, *, fault_at: float | None, in_flight: int, **more: Any) -> str:
    """One line per fault (pytest -s shows it): checkouts, how many were in flight when it
    struck, how long until every order was final, how they ended."""
    recovery = batch.last_final_at() - (fault_at if fault_at is not None else batch.started)
    extra = "".join(f" {k}={v}" for k, v in more.items())
    return (
        f"FAULT {name}: {len(batch.owners)} checkouts, {in_flight} in flight at the fault, "
        f"{batch.retried} retried; every order final {recovery:.1f} s after it; "
        f"{batch.statuses()}{extra}"
    )
