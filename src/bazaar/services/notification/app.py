"""Bus entrypoints: check an event's data against its contract, turn it into a mail, send
it once. The models below mirror contracts/events/order.paid.json and order.cancelled.json.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bazaar.platform.bus import Bus, EventHandler, PermanentError
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.services.notification import domain, handlers
from bazaar.services.notification.domain import CancelledOrder, OrderLine, PaidOrder
from bazaar.services.notification.mailer import SmtpMailer


class InvalidEvent(PermanentError, ValueError):
    """The event's data breaks its contract: no retry can make a mail of it, so the bus
    dead-letters it at once, with this error in the `x-error` header."""


# Ids and addresses end up in mail headers: no control characters (no header injection).
# The classes are contracts/events/order.*.json's.
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
Address = Annotated[
    str,
    Field(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\x00-\x20\x7f-\xa0]+@[^@\x00-\x20\x7f-\xa0]+$",
    ),
]


class EventData(BaseModel):
    # Strict: a JSON "3" is not the integer 3. Unknown fields are ignored (the contract says
    # consumers must tolerate them).
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


Data = TypeVar("Data", bound=EventData)


class LineData(EventData):
    product_id: Text
    name: str = Field(max_length=500)
    qty: int = Field(ge=1, le=10_000)
    unit_price_cents: int = Field(ge=0, le=100_000_000)


class OrderPaidData(EventData):
    order_id: Text
    user_id: Text
    email: Address
    items: list[LineData] = Field(min_length=1, max_length=1000)
    total_cents: int = Field(ge=0, le=10**15)

    def to_domain(self) -> PaidOrder:
        lines = tuple(
            OrderLine(i.product_id, i.name, i.qty, i.unit_price_cents) for i in self.items
        )
        return PaidOrder(self.order_id, self.email, lines, self.total_cents)


class OrderCancelledData(EventData):
    order_id: Text
    user_id: Text
    email: Address
    # Any string, not the schema's enum: a reason added later still gets a mail, in
    # general words (see domain.reason_in_words).
    reason: str = Field(min_length=1, max_length=100)

    def to_domain(self) -> CancelledOrder:
        return CancelledOrder(self.order_id, self.email, self.reason)


def _parse(model: type[Data], event: Envelope) -> Data:
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidEvent(f"{event.type} {event.id}: {problems}") from None


def event_handlers(db: Database, mailer: SmtpMailer) -> dict[str, EventHandler]:
    """One handler per consumed event type; `subscribe` puts them on the bus."""
    notifier = handlers.Notifier(db, mailer)

    async def on_order_paid(event: Envelope) -> None:
        order = _parse(OrderPaidData, event).to_domain()
        await notifier.send_once(event, domain.confirmation_mail(order))

    async def on_order_cancelled(event: Envelope) -> None:
        order = _parse(OrderCancelledData, event).to_domain()
        await notifier.send_once(event, domain.cancellation_mail(order))

    return {"order.paid": on_order_paid, "order.cancelled": on_order_cancelled}


def subscribe(bus: Bus, db: Database, mailer: SmtpMailer) -> None:
    for event_type, handler in event_handlers(db, mailer).items():
        bus.on_event(event_type, handlers.CONSUMER, handler)
