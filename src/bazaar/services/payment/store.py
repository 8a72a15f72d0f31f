"""The payments table and its repository (SQLAlchemy Core: a charge is on the checkout's
critical path, and plain rows map straight to the domain's `Payment`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import UtcDateTime
from bazaar.services.payment.domain import Payment, PaymentStatus

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(36), primary_key=True),
    # One charge per order, and one per key: the database enforces idempotency too.
    Column("order_id", String(64), nullable=False, unique=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("amount_cents", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("refunded_at", UtcDateTime(), nullable=True),
)


# What a charge looks up, by its key or its order: built once, SQLAlchemy reuses its
# compiled SQL without building and keying a new statement per charge.
_RECORDED_FOR_CHARGE = select(payments).where(
    or_(
        payments.c.idempotency_key == bindparam("key"),
        payments.c.order_id == bindparam("order_id"),
    )
)


@dataclass(frozen=True)
class Recorded:
    """What is already stored for a charge request: the payment made under its key, and
    the order's payment (the same one, another key's, or a void)."""

    under_key: Payment | None
    of_order: Payment | None


def _payment(row: Row[Any]) -> Payment:
    return Payment(
        payment_id=row.payment_id,
        order_id=row.order_id,
        amount_cents=row.amount_cents,
        status=PaymentStatus(row.status),
        created_at=row.created_at,
        refunded_at=row.refunded_at,
    )


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def recorded_for(self, idempotency_key: str, order_id: str) -> Recorded:
        """Both lookups a charge needs, in one statement (at most two rows)."""
        rows = await self._session.execute(
            _RECORDED_FOR_CHARGE, {"key": idempotency_key, "order_id": order_id}
        )
        under_key = of_order = None
        for row in rows:
            if row.idempotency_key == idempotency_key:
                under_key = _payment(row)
            if row.order_id == order_id:
                of_order = _payment(row)
        return Recorded(under_key, of_order)

    async def by_order(self, order_id: str) -> Payment | None:
        row = (
            await self._session.execute(select(payments).where(payments.c.order_id == order_id))
        ).first()
        return _payment(row) if row else None

    async def add(self, payment: Payment, idempotency_key: str) -> None:
        """A duplicate key or order fails here (IntegrityError)."""
        await self._session.execute(
            insert(payments),
            {
                "payment_id": payment.payment_id,
                "order_id": payment.order_id,
                "idempotency_key": idempotency_key,
                "amount_cents": payment.amount_cents,
                "status": payment.status.value,
                "created_at": payment.created_at,
                "refunded_at": payment.refunded_at,
            },
        )

    async def save(self, payment: Payment) -> None:
        await self._session.execute(
            update(payments)
            .where(payments.c.payment_id == payment.payment_id)
            .values(status=payment.status.value, refunded_at=payment.refunded_at)
        )
