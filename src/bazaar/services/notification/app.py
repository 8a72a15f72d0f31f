"""Bus entrypoints: `order.paid` and `order.cancelled`, each checked against its contract
(`bazaar.contracts.events`; an event that breaks it is dead-lettered at once) and turned
into a queued mail in the inbox's transaction (see `handlers`)."""

from __future__ import annotations

from bazaar.contracts.events import ORDER_CANCELLED, ORDER_PAID, OrderCancelled, OrderPaid
from bazaar.platform.bus import Bus
from bazaar.platform.consumers import consume
from bazaar.platform.db import Database
from bazaar.services.notification.handlers import CONSUMER, NotificationService


def subscribe(bus: Bus, db: Database, notifications: NotificationService) -> None:
    """Called once, before the bus starts."""
    consume(
        bus,
        db,
        ORDER_PAID,
        consumer=CONSUMER,
        contract=OrderPaid,
        handler=notifications.mail_paid_order,
    )
    consume(
        bus,
        db,
        ORDER_CANCELLED,
        consumer=CONSUMER,
        contract=OrderCancelled,
        handler=notifications.mail_cancelled_order,
    )
