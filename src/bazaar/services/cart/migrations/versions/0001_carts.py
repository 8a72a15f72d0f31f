"""carts, cart lines, and the platform's inbox and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-23 05:54:09.606340
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bazaar.platform.migrations import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "carts",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "cart_lines",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("qty BETWEEN 1 AND 99", name="qty_in_range"),
        sa.ForeignKeyConstraint(["user_id"], ["carts.user_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "product_id"),
    )
    create_messaging_tables()


def downgrade() -> None:
    drop_messaging_tables()
    op.drop_table("cart_lines")
    op.drop_table("carts")
