"""The mails_sent table and its repository (the inbox and outbox come from the platform)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bazaar.platform.db import UtcDateTime
from bazaar.services.notification.domain import Mail, MailKind


class Base(DeclarativeBase):
    pass


class SentMailRow(Base):
    __tablename__ = "mails_sent"
    # Never two mails of one kind for one order, whatever events say so: the database
    # enforces it even when two deliveries race.
    __table_args__ = (UniqueConstraint("order_id", "kind", name="uq_mails_sent_order_kind"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())


metadata = Base.metadata


class SentMailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def was_sent(self, order_id: str, kind: MailKind) -> bool:
        found = await self._session.scalar(
            select(SentMailRow.event_id).where(
                SentMailRow.order_id == order_id, SentMailRow.kind == kind.value
            )
        )
        return found is not None

    async def add(self, event_id: str, mail: Mail, sent_at: datetime) -> None:
        """Record the mail; flushed now, so a duplicate fails here, before anything is sent."""
        self._session.add(
            SentMailRow(
                event_id=event_id,
                order_id=mail.order_id,
                kind=mail.kind.value,
                to=mail.to,
                subject=mail.subject,
                sent_at=sent_at,
            )
        )
        await self._session.flush()
