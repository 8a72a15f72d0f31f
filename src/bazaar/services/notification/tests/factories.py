"""Events as the order service publishes them (contracts/events/order.*.json)."""

from __future__ import annotations

import uuid
from typing import Any

from bazaar.platform.events import Envelope, new_event


def order_paid(order_id: str | None = None, /, **data: Any) -> Envelope:
    order_id = order_id or str(uuid.uuid4())
    body = {
        "order_id": order_id,
        "user_id": "user-1",
        "email": "ada@example.com",
        "items": [
            {"product_id": "p-mug", "name": "Blue Mug", "qty": 2, "unit_price_cents": 1250},
            {"product_id": "p-tea", "name": "Green Tea", "qty": 1, "unit_price_cents": 499},
        ],
        "total_cents": 2999,
        **data,
    }
    return new_event("order.paid", "order", body, subject=order_id)


def order_cancelled(order_id: str | None = None, /, **data: Any) -> Envelope:
    order_id = order_id or str(uuid.uuid4())
    body = {
        "order_id": order_id,
        "user_id": "user-1",
        "email": "ada@example.com",
        "reason": "payment_declined",
        **data,
    }
    return new_event("order.cancelled", "order", body, subject=order_id)
