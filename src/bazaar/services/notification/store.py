"""The mails_sent table and its repository (the inbox and outbox come from the platform)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import UtcDateTime
from bazaar.services.notification.domain import Mail, MailKind

metadata = MetaData()

mails_sent = Table(
    "mails_sent",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("order_id", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("to", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=False),
    # Never two mails of one kind for one order, whatever events say so: the database
    # enforces it even when two deliveries race.
    UniqueConstraint("order_id", "kind", name="uq_mails_sent_order_kind"),
)


# Every event asks it: built once, SQLAlchemy reuses its compiled SQL per call.
_SENT = select(mails_sent.c.event_id).where(
    mails_sent.c.order_id == bindparam("order_id"), mails_sent.c.kind == bindparam("kind")
)


class SentMailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def was_sent(self, order_id: str, kind: MailKind) -> bool:
        found = await self._session.scalar(_SENT, {"order_id": order_id, "kind": kind.value})
        return found is not None

    async def add(self, event_id: str, mail: Mail, sent_at: datetime) -> None:
        """Record the mail; a second one for its order and kind fails (IntegrityError)."""
        await self._session.execute(
            insert(mails_sent),
            {
                "event_id": event_id,
                "order_id": mail.order_id,
                "kind": mail.kind.value,
                "to": mail.to,
                "subject": mail.subject,
                "sent_at": sent_at,
            },
        )
