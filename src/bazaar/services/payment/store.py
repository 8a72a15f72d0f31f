"""The payments table and its repository."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bazaar.platform.db import UtcDateTime
from bazaar.services.payment.domain import Payment, PaymentStatus


class Base(DeclarativeBase):
    pass


class PaymentRow(Base):
    __tablename__ = "payments"

    payment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # One charge per order, and one per key: the database enforces idempotency too.
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    refunded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    def to_domain(self) -> Payment:
        return Payment(
            payment_id=self.payment_id,
            order_id=self.order_id,
            amount_cents=self.amount_cents,
            status=PaymentStatus(self.status),
            created_at=self.created_at,
            refunded_at=self.refunded_at,
        )


metadata = Base.metadata


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_key(self, idempotency_key: str) -> Payment | None:
        row = await self._session.scalar(
            select(PaymentRow).where(PaymentRow.idempotency_key == idempotency_key)
        )
        return row.to_domain() if row else None

    async def by_order(self, order_id: str) -> Payment | None:
        row = await self._session.scalar(select(PaymentRow).where(PaymentRow.order_id == order_id))
        return row.to_domain() if row else None

    async def add(self, payment: Payment, idempotency_key: str) -> None:
        self._session.add(
            PaymentRow(
                payment_id=payment.payment_id,
                order_id=payment.order_id,
                idempotency_key=idempotency_key,
                amount_cents=payment.amount_cents,
                status=payment.status.value,
                created_at=payment.created_at,
                refunded_at=payment.refunded_at,
            )
        )
        await self._session.flush()

    async def save(self, payment: Payment) -> None:
        row = await self._session.get(PaymentRow, payment.payment_id)
        assert row is not None, "save() updates a payment that was loaded"
        row.status = payment.status.value
        row.refunded_at = payment.refunded_at
