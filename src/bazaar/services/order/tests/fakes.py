"""In-memory neighbours for the order service's tests: they behave like the real services
as the contracts describe them (idempotent by order id), and can be switched to fail."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bazaar.services.order.domain import CartLine, Quote
from bazaar.services.order.ports import (
    CartsUnavailable,
    Charge,
    Commitment,
    InventoryUnavailable,
    PaymentsUnavailable,
    PricingUnavailable,
    Quotes,
    Refund,
    Release,
    Reservation,
)

CATALOG = {
    "p-tea": Quote("p-tea", "Green tea", 450),
    "p-mug": Quote("p-mug", "Blue mug", 1200),
    "p-pot": Quote("p-pot", "Teapot", 3500),
}


class FakeInventory:
    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.stock = dict(stock) if stock is not None else {pid: 100 for pid in CATALOG}
        self.state: dict[str, str] = {}  # order id -> reserved|committed|released|out_of_stock
        self.held: dict[str, list[CartLine]] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.down = False

    def _call(self, method: str, order_id: str) -> None:
        self.calls[(method, order_id)] += 1
        if self.down:
            raise InventoryUnavailable("inventory is down (fake)")

    async def reserve(self, order_id: str, lines: Sequence[CartLine]) -> Reservation:
        self._call("reserve", order_id)
        if order_id in self.state:  # the first outcome, again
            return (
                Reservation.OUT_OF_STOCK
                if self.state[order_id] == "out_of_stock"
                else Reservation.RESERVED
            )
        if any(self.stock.get(line.product_id, 0) < line.qty for line in lines):
            self.state[order_id] = "out_of_stock"
            return Reservation.OUT_OF_STOCK
        for line in lines:
            self.stock[line.product_id] -= line.qty
        self.state[order_id] = "reserved"
        self.held[order_id] = list(lines)
        return Reservation.RESERVED

    async def commit(self, order_id: str) -> Commitment:
        self._call("commit", order_id)
        if self.state.get(order_id) in ("reserved", "committed"):
            self.state[order_id] = "committed"
            return Commitment.COMMITTED
        return Commitment.NOT_RESERVED

    async def release(self, order_id: str) -> Release:
        self._call("release", order_id)
        if self.state.get(order_id) == "committed":
            return Release.ALREADY_COMMITTED
        if self.state.get(order_id) == "reserved":
            for line in self.held.pop(order_id):
                self.stock[line.product_id] += line.qty
            self.state[order_id] = "released"
        return Release.RELEASED


class FakePayments:
    """`mode`: ok; decline; outage (the processor is down: charges and refunds fail, but
    the service still tells that nothing was charged); down (the service is unreachable);
    lost (charged, but the answer is lost on the way back: the caller sees it as
    unavailable)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.charges: dict[str, str] = {}  # order id -> captured|declined|refunded|voided
        self.amounts: dict[str, int] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        # While set and not yet opened, every charge waits for it.
        self.gate: asyncio.Event | None = None

    async def charge(self, order_id: str, amount_cents: int) -> Charge:
        self.calls[("charge", order_id)] += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.mode in ("down", "outage"):
            raise PaymentsUnavailable(f"payment is {self.mode} (fake)")
        if self.charges.get(order_id) == "voided":
            raise PaymentsUnavailable("charge answered status 'voided' (fake)")
        if order_id not in self.charges:
            self.charges[order_id] = "declined" if self.mode == "decline" else "captured"
            self.amounts[order_id] = amount_cents
        if self.mode == "lost":
            raise PaymentsUnavailable("payment timed out (fake)")
        return Charge.DECLINED if self.charges[order_id] == "declined" else Charge.CAPTURED

    async def refund(self, order_id: str, amount_cents: int) -> Refund:
        self.calls[("refund", order_id)] += 1
        if self.mode == "down":
            raise PaymentsUnavailable("payment is down (fake)")
        charge = self.charges.setdefault(order_id, "voided")
        if charge not in ("captured", "refunded"):
            return Refund.NOTHING_TO_REFUND
        if charge == "captured" and self.mode == "outage":
            raise PaymentsUnavailable("payment is in an outage (fake)")
        self.charges[order_id] = "refunded"
        return Refund.REFUNDED


@dataclass
class FakeCarts:
    carts: dict[str, list[CartLine]] = field(default_factory=dict)
    down: bool = False

    def put(self, user_id: str, *lines: tuple[str, int]) -> None:
        self.carts[user_id] = [CartLine(pid, qty) for pid, qty in lines]

    async def lines(self, user_id: str) -> list[CartLine]:
        if self.down:
            raise CartsUnavailable("cart is down (fake)")
        return list(self.carts.get(user_id, []))


@dataclass
class FakePricing:
    catalog: dict[str, Quote] = field(default_factory=lambda: dict(CATALOG))
    down: bool = False

    async def quote(self, product_ids: Sequence[str]) -> Quotes:
        if self.down:
            raise PricingUnavailable("catalog did not answer (fake)")
        known = {pid: self.catalog[pid] for pid in product_ids if pid in self.catalog}
        return Quotes(known, [pid for pid in product_ids if pid not in self.catalog])
