"""The payloads (`data`) of the events on the bus, one model per event type.

Consumers validate strictly (a JSON "3" is not the integer 3) and ignore fields they do
not know, so a producer may add fields (contracts/README.md). A payload that fails its
model can never be handled: the platform dead-letters it at once (`platform.consumers`).
Ids and addresses end up in mail headers and logs, so they carry no control characters.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ORDER_CREATED = "order.created"
ORDER_PAID = "order.paid"
ORDER_CANCELLED = "order.cancelled"
STOCK_CHANGED = "stock.changed"

Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
Email = Annotated[
    str,
    Field(
        min_length=3, max_length=320, pattern=r"^[^@\x00-\x20\x7f-\xa0]+@[^@\x00-\x20\x7f-\xa0]+$"
    ),
]
Cents = Annotated[int, Field(ge=0, le=10**15)]
StockUnits = Annotated[int, Field(ge=0, le=2**31 - 1)]


class EventData(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class OrderedItem(EventData):
    product_id: Id
    name: str = Field(max_length=500)
    qty: int = Field(ge=1, le=10_000)
    unit_price_cents: int = Field(ge=0, le=100_000_000)


class OrderCreated(EventData):
    """`order.created`: an order was placed (contracts/events/order.created.json)."""

    order_id: Id
    user_id: Id
    email: Email
    items: list[OrderedItem] = Field(min_length=1, max_length=1000)
    total_cents: Cents

    def quantities(self) -> dict[str, int]:
        """Units ordered per product (a product may stand on several lines)."""
        ordered: dict[str, int] = {}
        for item in self.items:
            ordered[item.product_id] = ordered.get(item.product_id, 0) + item.qty
        return ordered


class OrderPaid(OrderCreated):
    """`order.paid`: the order was charged and its stock committed; the same fields."""


class OrderCancelled(EventData):
    """`order.cancelled`: stock released, any charge refunded."""

    order_id: Id
    user_id: Id
    email: Email
    # Any short string, not the schema's enum: a consumer written today still handles a
    # reason a later producer adds (the notification mails it in general words).
    reason: str = Field(min_length=1, max_length=100)


class StockChanged(EventData):
    """`stock.changed`: a product's stock levels; the highest `version` is the newest."""

    product_id: Id
    on_hand: StockUnits
    reserved: StockUnits
    available: StockUnits
    version: int = Field(ge=1, le=2**63 - 1)


CONTRACTS: dict[str, type[EventData]] = {
    ORDER_CREATED: OrderCreated,
    ORDER_PAID: OrderPaid,
    ORDER_CANCELLED: OrderCancelled,
    STOCK_CHANGED: StockChanged,
}
