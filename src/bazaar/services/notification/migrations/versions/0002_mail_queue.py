"""mails_sent queues the mails it records: body, queued_at, attempts, held_until, and
sent_at NULL until the sender sent the mail

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSENT = sa.text("sent_at IS NULL")


def upgrade() -> None:
    # The rows already there are mails sent: they keep their sent_at, with no text.
    with op.batch_alter_table("mails_sent") as batch:
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("sent_at", existing_type=sa.DateTime(timezone=True), nullable=True)
    op.create_index(
        "ix_mails_sent_unsent",
        "mails_sent",
        ["queued_at"],
        sqlite_where=UNSENT,
        postgresql_where=UNSENT,
    )


def downgrade() -> None:
    # A mail still queued has no place in the old table: it is dropped, and its order
    # gets no mail.
    op.drop_index("ix_mails_sent_unsent", table_name="mails_sent")
    op.execute("DELETE FROM mails_sent WHERE sent_at IS NULL")
    with op.batch_alter_table("mails_sent") as batch:
        batch.alter_column("sent_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.drop_column("held_until")
        batch.drop_column("attempts")
        batch.drop_column("queued_at")
        batch.drop_column("body")
