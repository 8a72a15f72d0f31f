"""record what the seed loaded as stock adjustments (request_id "seed:<product>")

The request_id column grows to 110 characters, room for the prefix before any product id.

From this revision on, the seed writes one adjustment per product it creates, so every
unit the warehouse received is an adjustment row and `bazaar check` can prove that stock
is conserved (adjustments = on hand + committed reservation lines). Products seeded
before it get their seed row reconstructed from their current state: conservation is
assumed up to the upgrade and proven from then on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from bazaar.platform.db import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEED_PREFIX = "seed:"

stock = sa.table(
    "stock",
    sa.column("product_id", sa.String),
    sa.column("on_hand", sa.Integer),
    sa.column("version", sa.BigInteger),
)
reservations = sa.table("reservations", sa.column("order_id", sa.String), sa.column("state"))
lines = sa.table(
    "reservation_lines",
    sa.column("order_id", sa.String),
    sa.column("product_id", sa.String),
    sa.column("qty", sa.Integer),
)
adjustments = sa.table(
    "stock_adjustments",
    sa.column("request_id", sa.String),
    sa.column("product_id", sa.String),
    sa.column("delta", sa.Integer),
    sa.column("on_hand", sa.Integer),
    sa.column("reserved", sa.Integer),
    sa.column("version", sa.BigInteger),
    sa.column("created_at", UtcDateTime()),
)


def upgrade() -> None:
    # Room for the prefix in front of the longest product id (100 characters).
    with op.batch_alter_table("stock_adjustments") as batch:
        batch.alter_column(
            "request_id",
            existing_type=sa.String(100),
            type_=sa.String(110),
            existing_nullable=False,
        )
    bind = op.get_bind()
    sold = dict(
        bind.execute(
            sa.select(lines.c.product_id, sa.func.sum(lines.c.qty))
            .join(reservations, reservations.c.order_id == lines.c.order_id)
            .where(reservations.c.state == "committed")
            .group_by(lines.c.product_id)
        ).all()
    )
    adjusted = dict(
        bind.execute(
            sa.select(adjustments.c.product_id, sa.func.sum(adjustments.c.delta)).group_by(
                adjustments.c.product_id
            )
        ).all()
    )
    seeded = {
        product_id
        for (product_id,) in bind.execute(
            sa.select(adjustments.c.product_id).where(
                adjustments.c.request_id.like(f"{SEED_PREFIX}%")
            )
        )
    }
    now = datetime.now(UTC)
    rows = []
    for product_id, on_hand, _ in bind.execute(sa.select(stock)).all():
        received = on_hand + (sold.get(product_id) or 0) - (adjusted.get(product_id) or 0)
        if product_id in seeded or received == 0:
            continue
        rows.append(
            {
                "request_id": f"{SEED_PREFIX}{product_id}",
                "product_id": product_id,
                "delta": received,
                "on_hand": received,
                "reserved": 0,
                "version": 1,
                "created_at": now,
            }
        )
    if rows:
        op.bulk_insert(adjustments, rows)


def downgrade() -> None:
    op.execute(adjustments.delete().where(adjustments.c.request_id.like(f"{SEED_PREFIX}%")))
    with op.batch_alter_table("stock_adjustments") as batch:
        batch.alter_column(
            "request_id",
            existing_type=sa.String(110),
            type_=sa.String(100),
            existing_nullable=False,
        )
