"""the W3C trace context an order's checkout ran in, for its saga resumed elsewhere

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: an expand-only change; orders of before (and of a process that
    # does not trace) simply have none.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("trace_context")
