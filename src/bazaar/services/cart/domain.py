"""The cart rules, free of I/O: what adding, setting, removing and ordering do to a cart,
and how a cart is priced from the catalog's quotes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_QTY = 99
MAX_LINES = 50


class CartError(Exception):
    """A change the cart's rules refuse; the cart is left as it was."""


class QuantityOutOfRange(CartError):
    pass


class TooManyLines(CartError):
    pass


class NotInCart(CartError):
    pass


class UnknownProduct(CartError):
    """The catalog does not know the product."""


@dataclass
class Cart:
    """One user's cart: product id -> quantity, in the order the products were added.

    `version` counts saved changes; the store refuses to save over a newer version, so two
    concurrent changes cannot both win (optimistic concurrency).
    """

    user_id: str
    lines: dict[str, int] = field(default_factory=dict)
    version: int = 0

    def add(self, product_id: str, qty: int) -> None:
        _check_qty(qty)
        current = self.lines.get(product_id, 0)
        if current + qty > MAX_QTY:
            raise QuantityOutOfRange(
                f"cannot add {qty} of {product_id}: the cart already holds {current} "
                f"and a line holds at most {MAX_QTY}"
            )
        if not current and len(self.lines) >= MAX_LINES:
            raise TooManyLines(
                f"a cart holds at most {MAX_LINES} different products; remove one first"
            )
        self.lines[product_id] = current + qty

    def set_quantity(self, product_id: str, qty: int) -> None:
        self._require(product_id)
        _check_qty(qty)
        self.lines[product_id] = qty

    def remove(self, product_id: str) -> None:
        self._require(product_id)
        del self.lines[product_id]

    def remove_ordered(self, ordered: Mapping[str, int]) -> bool:
        """Take what was ordered out of the cart; anything added since stays.
        Returns whether the cart changed."""
        changed = False
        for product_id, qty in ordered.items():
            if product_id not in self.lines or qty <= 0:
                continue
            left = self.lines[product_id] - qty
            if left > 0:
                self.lines[product_id] = left
            else:
                del self.lines[product_id]
            changed = True
        return changed

    def _require(self, product_id: str) -> None:
        if product_id not in self.lines:
            raise NotInCart(f"product {product_id} is not in your cart")


def _check_qty(qty: int) -> None:
    if not 1 <= qty <= MAX_QTY:
        raise QuantityOutOfRange(f"qty must be between 1 and {MAX_QTY}, got {qty}")


@dataclass(frozen=True)
class Quote:
    """The catalog's current name and price of a product."""

    product_id: str
    name: str
    price_cents: int


@dataclass(frozen=True)
class PricedLine:
    product_id: str
    name: str
    unit_price_cents: int
    qty: int

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.qty


@dataclass(frozen=True)
class PricedCart:
    user_id: str
    lines: tuple[PricedLine, ...]

    @property
    def total_cents(self) -> int:
        return sum(line.line_total_cents for line in self.lines)

    @property
    def item_count(self) -> int:
        """Units in the cart (what a cart badge shows), not distinct products."""
        return sum(line.qty for line in self.lines)


def price(cart: Cart, quotes: Mapping[str, Quote]) -> PricedCart:
    """The cart at today's prices. A product the catalog no longer has is left out of the
    view (it cannot be bought); it stays stored until the user removes it."""
    lines = tuple(
        PricedLine(product_id, quotes[product_id].name, quotes[product_id].price_cents, qty)
        for product_id, qty in cart.lines.items()
        if product_id in quotes
    )
    return PricedCart(cart.user_id, lines)
