"""The service tables `bazaar check` reads, declared here by name, column by column.

The runner never imports a service's code: it reads each service's database as an
operator would, through these declarations of only the columns it relies on. A service
that renames or drops one of them breaks the checker's tests, which is the point.

    inventory     stock              product_id, on_hand, reserved
                  reservations       order_id, state
                  reservation_lines  order_id, product_id, qty
                  stock_adjustments  request_id, product_id, delta
    order         orders             id, status, total_cents, created_at, saga_step
    payment       payments           payment_id, order_id, amount_cents, status
    notification  mails_sent         event_id, order_id, kind, attempts, queued_at, sent_at
    any service   outbox             seq, event_type, created_at, published_at
    any service   inbox              consumer, event_id

(outbox and inbox as in bazaar.platform.messaging_tables.)
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

from bazaar.platform.db import UtcDateTime
from bazaar.platform.messaging_tables import inbox, outbox

metadata = MetaData()

stock = Table(
    "stock",
    metadata,
    Column("product_id", String, primary_key=True),
    Column("on_hand", Integer),
    Column("reserved", Integer),
)

reservations = Table(
    "reservations",
    metadata,
    Column("order_id", String, primary_key=True),
    Column("state", String),  # reserved | committed | released | out_of_stock
)

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("order_id", String, primary_key=True),
    Column("product_id", String, primary_key=True),
    Column("qty", Integer),
)

stock_adjustments = Table(
    "stock_adjustments",
    metadata,
    Column("request_id", String, primary_key=True),  # "seed:<product>" for the seed
    Column("product_id", String),
    Column("delta", Integer),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String, primary_key=True),
    Column("status", String),  # pending | paid | cancelled
    Column("total_cents", BigInteger),
    Column("created_at", UtcDateTime()),
    Column("saga_step", String),  # for the report: where a stuck order stands
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String, primary_key=True),
    Column("order_id", String),
    Column("amount_cents", BigInteger),
    Column("status", String),  # captured | declined | refunded
)

mails_sent = Table(
    "mails_sent",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("order_id", String),
    Column("kind", String),  # confirmation | cancellation
    Column("attempts", Integer),
    Column("queued_at", UtcDateTime()),  # NULL only on mails sent before the queue existed
    Column("sent_at", UtcDateTime()),  # NULL while queued
)

# What each service's database must hold for its checks; outbox and inbox are optional.
REQUIRED: dict[str, tuple[Table, ...]] = {
    "inventory": (stock, reservations, reservation_lines, stock_adjustments),
    "order": (orders,),
    "payment": (payments,),
    "notification": (mails_sent,),
}

__all__ = [
    "REQUIRED",
    "inbox",
    "mails_sent",
    "orders",
    "outbox",
    "payments",
    "reservation_lines",
    "reservations",
    "stock",
    "stock_adjustments",
]
