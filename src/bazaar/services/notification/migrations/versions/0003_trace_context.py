"""mails_sent keeps the W3C trace context of the event that queued the mail, so that its
send, later and in another task, is a span of the order's trace

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: mails queued before (or by a process not tracing) have none.
    with op.batch_alter_table("mails_sent") as batch:
        batch.add_column(sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mails_sent") as batch:
        batch.drop_column("trace_context")
