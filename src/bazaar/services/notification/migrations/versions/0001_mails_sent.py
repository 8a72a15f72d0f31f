"""mails_sent, with the platform's inbox and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-23 05:54:16.559060
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
        "mails_sent",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("to", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        # One mail per order and kind, whichever event asks for it.
        sa.UniqueConstraint("order_id", "kind", name="uq_mails_sent_order_kind"),
    )
    # Notification publishes nothing today; the outbox is here so that it can, like every
    # service on the bus, without a migration of its own.
    create_messaging_tables()


def downgrade() -> None:
    drop_messaging_tables()
    op.drop_table("mails_sent")
