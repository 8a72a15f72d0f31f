"""The neighbours the order service needs, as small interfaces (ports).

`adapters.py` implements them over gRPC, HTTP and the bus; tests implement them with
fakes. The saga and checkout code knows only these. `SagaStarter` is the one port inside
the service: checkout hands each new order to the saga runner through it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bazaar.services.order.domain import CartLine, Order, Quote


class NeighbourUnavailable(Exception):
    """The neighbour did not answer usefully (down, timeout, breaker open, 5xx, garbage).
    Nothing can be concluded about the call: retry it later."""


class InventoryUnavailable(NeighbourUnavailable):
    pass


class PaymentsUnavailable(NeighbourUnavailable):
    pass


class CartsUnavailable(NeighbourUnavailable):
    pass


class PricingUnavailable(NeighbourUnavailable):
    pass


class PricingRefused(Exception):
    """The catalog refused the quote request itself (bad product ids)."""


class Reservation(enum.StrEnum):
    RESERVED = "reserved"
    OUT_OF_STOCK = "out_of_stock"


class Commitment(enum.StrEnum):
    COMMITTED = "committed"
    NOT_RESERVED = "not_reserved"  # the reservation was released or never made


class Release(enum.StrEnum):
    RELEASED = "released"  # released now, before, or there was nothing to release
    ALREADY_COMMITTED = "already_committed"


class Charge(enum.StrEnum):
    CAPTURED = "captured"
    DECLINED = "declined"


class Refund(enum.StrEnum):
    REFUNDED = "refunded"
    NOTHING_TO_REFUND = "nothing_to_refund"  # never charged (now never will be), or declined


@dataclass(frozen=True)
class Quotes:
    by_product: dict[str, Quote]
    missing: list[str] = field(default_factory=list)


class Inventory(Protocol):
    """Every call is idempotent by order id (contracts/inventory.proto)."""

    async def reserve(self, order_id: str, lines: Sequence[CartLine]) -> Reservation: ...

    async def commit(self, order_id: str) -> Commitment: ...

    async def release(self, order_id: str) -> Release: ...


class Payments(Protocol):
    """Idempotent by order id: a retried charge never charges twice."""

    async def charge(self, order_id: str, amount_cents: int) -> Charge: ...

    async def refund(self, order_id: str, amount_cents: int) -> Refund:
        """Give up on the order's charge: give it back if it was taken, and make sure that
        a charge still on its way takes nothing if it was not."""
        ...


class Carts(Protocol):
    async def lines(self, user_id: str) -> list[CartLine]: ...


class Pricing(Protocol):
    async def quote(self, product_ids: Sequence[str]) -> Quotes: ...


class SagaStarter(Protocol):
    """Takes on a new order's saga (`saga.SagaRunner`)."""

    def starting(self, order: Order) -> AbstractContextManager[datetime | None]:
        """Lease `order` while the caller inserts it: yields the lease to insert it with,
        or None to insert it unleased (a runner claims it later). Once the block has
        inserted it, its saga starts at once from `order` as it is, with no claim and no
        read; if the block raises, nothing starts."""
        ...
