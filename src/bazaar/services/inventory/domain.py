"""The inventory's rules, free of I/O: what a valid request is, when stock fits an order,
and how reserving, selling, releasing and adjusting change a product's stock.

Invariants: `0 <= reserved <= on_hand` for every product (no oversell), every change of a
product's stock raises its `version` by one, and a reservation moves only
reserved -> committed or reserved -> released.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

MAX_ID_LENGTH = 100
MAX_LINES = 100
MAX_LINE_QTY = 10_000
MAX_DELTA = 1_000_000
# Well inside the contract's int32 fields, so no sum of valid changes can overflow them.
MAX_ON_HAND = 1_000_000_000
MAX_QUERY_IDS = 1_000
# Request ids of the adjustments that record what a seed loaded; no client sends one.
SEED_REQUEST_PREFIX = "seed:"


class InventoryError(Exception):
    """A request the rules refuse; the message says why, for the caller."""


class InvalidRequest(InventoryError):
    """Malformed input: nothing was looked up or changed."""


class UnknownOrder(InventoryError):
    """No reservation was ever made for this order."""


class UnknownProduct(InventoryError):
    """The product has no stock record."""


class WrongState(InventoryError):
    """The request is well-formed but the current state forbids it."""


class KeyReused(InventoryError):
    """An idempotency key came back with a different request."""


def check_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if not value.isprintable() or value.strip() != value:
        raise InvalidRequest(f"{name} {value!r} has unprintable characters or surrounding spaces")
    return value


# --- commands: a request that passed validation ---------------------------------------


@dataclass(frozen=True)
class Line:
    product_id: str
    qty: int


@dataclass(frozen=True)
class ReserveStock:
    order_id: str
    lines: tuple[Line, ...]

    def __post_init__(self) -> None:
        check_id(self.order_id, "order_id")
        if not self.lines:
            raise InvalidRequest("an order needs at least one line")
        if len(self.lines) > MAX_LINES:
            raise InvalidRequest(f"an order has at most {MAX_LINES} lines, got {len(self.lines)}")
        seen: set[str] = set()
        for number, line in enumerate(self.lines, start=1):
            check_id(line.product_id, f"line {number}: product_id")
            if not 1 <= line.qty <= MAX_LINE_QTY:
                raise InvalidRequest(
                    f"line {number}: qty must be 1..{MAX_LINE_QTY}, got {line.qty}"
                )
            if line.product_id in seen:
                raise InvalidRequest(f"product {line.product_id!r} appears in more than one line")
            seen.add(line.product_id)


@dataclass(frozen=True)
class CommitReservation:
    order_id: str

    def __post_init__(self) -> None:
        check_id(self.order_id, "order_id")


@dataclass(frozen=True)
class ReleaseReservation:
    order_id: str

    def __post_init__(self) -> None:
        check_id(self.order_id, "order_id")


@dataclass(frozen=True)
class AdjustStock:
    product_id: str
    delta: int
    request_id: str

    def __post_init__(self) -> None:
        check_id(self.product_id, "product_id")
        check_id(self.request_id, "request_id")
        if self.request_id.startswith(SEED_REQUEST_PREFIX):
            raise InvalidRequest(f"request_id must not start with {SEED_REQUEST_PREFIX!r}")
        if self.delta == 0:
            raise InvalidRequest("delta must not be 0")
        if abs(self.delta) > MAX_DELTA:
            raise InvalidRequest(f"delta must be within ±{MAX_DELTA}, got {self.delta}")


@dataclass(frozen=True)
class GetStock:
    """Empty `product_ids`: every product."""

    product_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.product_ids) > MAX_QUERY_IDS:
            raise InvalidRequest(f"ask for at most {MAX_QUERY_IDS} products at once")
        for product_id in self.product_ids:
            check_id(product_id, "product_id")


@dataclass(frozen=True)
class SeedStock:
    """Initial units per product, for products that have no stock record yet."""

    levels: tuple[tuple[str, int], ...]


def seed_command(products: object) -> SeedStock:
    """Read a seed file's content: a JSON list of products with `id` and `stock`."""
    if not isinstance(products, list):
        raise InvalidRequest("the seed file must hold a JSON list of products")
    levels: dict[str, int] = {}
    for index, product in enumerate(products):
        where = f"product #{index}"
        if not isinstance(product, dict):
            raise InvalidRequest(f"{where}: must be an object")
        product_id = check_id(product.get("id"), f"{where}: id")
        units = product.get("stock")
        if type(units) is not int or not 0 <= units <= MAX_ON_HAND:
            raise InvalidRequest(
                f"{where} ({product_id}): stock must be an integer 0..{MAX_ON_HAND}"
            )
        if product_id in levels:
            raise InvalidRequest(f"{where}: product {product_id!r} is listed twice")
        levels[product_id] = units
    return SeedStock(tuple(levels.items()))


# --- the aggregates -------------------------------------------------------------------


@dataclass
class Stock:
    """One product's units. `version` 0 means the product has no record yet."""

    product_id: str
    on_hand: int = 0
    reserved: int = 0
    version: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def hold(self, qty: int) -> None:
        if qty > self.available:
            raise WrongState(f"product {self.product_id!r} has {self.available} units, not {qty}")
        self.reserved += qty
        self.version += 1

    def unhold(self, qty: int) -> None:
        self.reserved -= qty
        self.version += 1
        self._check()

    def sell(self, qty: int) -> None:
        """Held units leave the warehouse."""
        self.on_hand -= qty
        self.reserved -= qty
        self.version += 1
        self._check()

    def adjust(self, delta: int) -> None:
        on_hand = self.on_hand + delta
        if on_hand < self.reserved:
            raise WrongState(
                f"product {self.product_id!r} has {self.on_hand} on hand of which "
                f"{self.reserved} reserved: cannot remove {-delta}"
            )
        if on_hand > MAX_ON_HAND:
            raise InvalidRequest(f"product {self.product_id!r} would exceed {MAX_ON_HAND} units")
        self.on_hand = on_hand
        self.version += 1

    def _check(self) -> None:
        # Reached only through a bug (a reservation that disagrees with the stock); the
        # database's check constraint is the second line of defence.
        if not 0 <= self.reserved <= self.on_hand:
            raise AssertionError(f"stock of {self.product_id!r} broke its invariant: {self}")


class ReservationState(StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    # The order did not fit: nothing is held, and a retry of Reserve gets this answer again.
    OUT_OF_STOCK = "out_of_stock"


@dataclass
class Reservation:
    order_id: str
    state: ReservationState
    lines: tuple[Line, ...]
    short_product_ids: tuple[str, ...] = field(default=())

    def commit(self, stock: Mapping[str, Stock]) -> list[Stock]:
        """Sell the held units; returns the stock it changed (none on a repeat)."""
        if self.state is ReservationState.COMMITTED:
            return []
        if self.state is ReservationState.RELEASED:
            raise WrongState(f"order {self.order_id!r} was released and cannot be committed")
        if self.state is ReservationState.OUT_OF_STOCK:
            raise WrongState(f"order {self.order_id!r} was out of stock and holds nothing")
        changed = [_stock_of(stock, line) for line in self.lines]
        for line, product in zip(self.lines, changed, strict=True):
            product.sell(line.qty)
        self.state = ReservationState.COMMITTED
        return changed

    def release(self, stock: Mapping[str, Stock]) -> list[Stock]:
        """Give the held units back; returns the stock it changed (none on a repeat)."""
        if self.state in (ReservationState.RELEASED, ReservationState.OUT_OF_STOCK):
            return []
        if self.state is ReservationState.COMMITTED:
            raise WrongState(f"order {self.order_id!r} was committed and cannot be released")
        changed = [_stock_of(stock, line) for line in self.lines]
        for line, product in zip(self.lines, changed, strict=True):
            product.unhold(line.qty)
        self.state = ReservationState.RELEASED
        return changed


def _stock_of(stock: Mapping[str, Stock], line: Line) -> Stock:
    try:
        return stock[line.product_id]
    except KeyError:
        raise AssertionError(f"reserved product {line.product_id!r} has no stock") from None


def reserve(command: ReserveStock, stock: Mapping[str, Stock]) -> tuple[Reservation, list[Stock]]:
    """Hold every line or none. An unknown product counts as out of stock. Returns the
    reservation (RESERVED or OUT_OF_STOCK) and the stock it changed."""
    short = tuple(
        line.product_id
        for line in command.lines
        if line.product_id not in stock or stock[line.product_id].available < line.qty
    )
    if short:
        return Reservation(
            command.order_id, ReservationState.OUT_OF_STOCK, command.lines, short
        ), []
    changed = [stock[line.product_id] for line in command.lines]
    for line, product in zip(command.lines, changed, strict=True):
        product.hold(line.qty)
    return Reservation(command.order_id, ReservationState.RESERVED, command.lines), changed


@dataclass(frozen=True)
class Adjustment:
    """An applied AdjustStock and the level it produced, answered again on a retry."""

    request_id: str
    product_id: str
    delta: int
    result: Stock

    def answer_to(self, command: AdjustStock) -> Stock:
        if (command.product_id, command.delta) != (self.product_id, self.delta):
            raise KeyReused(
                f"request_id {command.request_id!r} was already used for "
                f"{self.product_id!r} {self.delta:+d}"
            )
        return self.result


def adjust(command: AdjustStock, current: Stock | None) -> Stock:
    """Apply an adjustment; a positive delta on an unknown product creates its stock."""
    if current is None:
        if command.delta < 0:
            raise UnknownProduct(f"product {command.product_id!r} has no stock to remove")
        current = Stock(command.product_id)
    current.adjust(command.delta)
    return current


def seed(command: SeedStock, existing: Sequence[str]) -> list[Stock]:
    """Stock for the seeded products that have none yet; others keep what they have."""
    known = set(existing)
    created = []
    for product_id, units in command.levels:
        if product_id not in known:
            created.append(Stock(product_id, on_hand=units, version=1))
    return created


def seed_adjustment(created: Stock) -> Adjustment:
    """The record of what the seed put into a product, so that every unit the warehouse
    ever received is an adjustment: received = on hand + sold (`bazaar check` proves it)."""
    return Adjustment(
        f"{SEED_REQUEST_PREFIX}{created.product_id}",
        created.product_id,
        created.on_hand,
        Stock(created.product_id, created.on_hand, created.reserved, created.version),
    )
