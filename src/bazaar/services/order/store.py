"""The orders tables and their repository. The saga's state lives in the order row, so
that whatever process picks the order up next knows exactly where it stands."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bazaar.platform.db import UtcDateTime
from bazaar.services.order.domain import (
    CancelReason,
    LineItem,
    Order,
    OrderStatus,
    Saga,
    Step,
)

# A user sees at most this many of their newest orders in the list.
LIST_LIMIT = 100


class Base(DeclarativeBase):
    pass


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # The same Idempotency-Key from the same user is the same order; NULLs never clash.
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_key"),
        Index("ix_orders_user_created", "user_id", "created_at"),
        Index("ix_orders_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(320))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(30), nullable=True)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    saga_step: Mapped[str] = mapped_column(String(20))
    saga_attempts: Mapped[int] = mapped_column(Integer, default=0)
    saga_reason: Mapped[str | None] = mapped_column(String(30), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Set while a saga runner works on the order, so that no other runner does.
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)

    items: Mapped[list[OrderItemRow]] = relationship(
        lazy="selectin", order_by="OrderItemRow.position", cascade="all, delete-orphan"
    )

    def to_domain(self) -> Order:
        return Order(
            id=self.id,
            user_id=self.user_id,
            email=self.email,
            items=tuple(item.to_domain() for item in self.items),
            total_cents=self.total_cents,
            status=OrderStatus(self.status),
            reason=CancelReason(self.reason) if self.reason else None,
            created_at=self.created_at,
            updated_at=self.updated_at,
            saga=Saga(
                step=Step(self.saga_step),
                next_attempt_at=self.next_attempt_at,
                attempts=self.saga_attempts,
                deadline=self.deadline,
                reason=CancelReason(self.saga_reason) if self.saga_reason else None,
            ),
            version=self.version,
        )


class OrderItemRow(Base):
    __tablename__ = "order_items"

    order_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(Text)
    qty: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)

    def to_domain(self) -> LineItem:
        return LineItem(self.product_id, self.name, self.qty, self.unit_price_cents)


metadata = Base.metadata


def _saga_columns(order: Order) -> dict[str, object]:
    return {
        "status": order.status.value,
        "reason": order.reason.value if order.reason else None,
        "updated_at": order.updated_at,
        "saga_step": order.saga.step.value,
        "saga_attempts": order.saga.attempts,
        "saga_reason": order.saga.reason.value if order.saga.reason else None,
        "next_attempt_at": order.saga.next_attempt_at,
        "deadline": order.saga.deadline,
    }


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, order: Order, idempotency_key: str | None) -> None:
        row = OrderRow(
            id=order.id,
            user_id=order.user_id,
            email=order.email,
            idempotency_key=idempotency_key,
            total_cents=order.total_cents,
            created_at=order.created_at,
            version=order.version,
            lease_until=None,
            items=[
                OrderItemRow(
                    position=position,
                    product_id=item.product_id,
                    name=item.name,
                    qty=item.qty,
                    unit_price_cents=item.unit_price_cents,
                )
                for position, item in enumerate(order.items)
            ],
            **_saga_columns(order),
        )
        self._session.add(row)
        await self._session.flush()  # a duplicate key fails here, inside the transaction

    async def get(self, order_id: str) -> Order | None:
        row = await self._session.get(OrderRow, order_id)
        return row.to_domain() if row else None

    async def of_user(self, user_id: str, order_id: str) -> Order | None:
        row = await self._session.scalar(
            select(OrderRow).where(OrderRow.id == order_id, OrderRow.user_id == user_id)
        )
        return row.to_domain() if row else None

    async def by_idempotency_key(self, user_id: str, key: str) -> Order | None:
        row = await self._session.scalar(
            select(OrderRow).where(OrderRow.user_id == user_id, OrderRow.idempotency_key == key)
        )
        return row.to_domain() if row else None

    async def newest_of_user(self, user_id: str, limit: int = LIST_LIMIT) -> list[Order]:
        rows = await self._session.scalars(
            select(OrderRow)
            .where(OrderRow.user_id == user_id)
            .order_by(OrderRow.created_at.desc(), OrderRow.id.desc())
            .limit(limit)
        )
        return [row.to_domain() for row in rows]

    async def save(self, order: Order, *, lease_until: datetime | None) -> Order | None:
        """Write the order's new state if nobody wrote since it was read (its `version`);
        returns it with the bumped version, or None when the write lost that race."""
        result = await self._session.execute(
            update(OrderRow)
            .where(OrderRow.id == order.id, OrderRow.version == order.version)
            .values(**_saga_columns(order), lease_until=lease_until, version=order.version + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        return replace(order, version=order.version + 1)

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, int]]:
        """Lease up to `limit` pending orders whose next step is due and that no runner
        holds; returns (order id, version). Claiming bumps the version, so a runner whose
        lease ran out can no longer write (a fencing token)."""
        query = (
            select(OrderRow.id, OrderRow.version)
            .where(
                OrderRow.status == OrderStatus.PENDING.value,
                OrderRow.next_attempt_at <= now,
                or_(OrderRow.lease_until.is_(None), OrderRow.lease_until <= now),
            )
            .order_by(OrderRow.next_attempt_at)
            .limit(limit)
        )
        if exclude:
            query = query.where(OrderRow.id.not_in(list(exclude)))
        if self._session.get_bind().dialect.name != "sqlite":
            # Replicas claim side by side without waiting on each other's rows.
            query = query.with_for_update(skip_locked=True)
        claimed = (await self._session.execute(query)).all()
        if not claimed:
            return []
        await self._session.execute(
            update(OrderRow)
            .where(OrderRow.id.in_([order_id for order_id, _ in claimed]))
            .values(lease_until=lease_until, version=OrderRow.version + 1)
            .execution_options(synchronize_session=False)
        )
        return [(order_id, version + 1) for order_id, version in claimed]

    async def release_leases(self, claims: Sequence[tuple[str, int]]) -> None:
        """Give leases back (at shutdown) so that the next runner need not wait them out."""
        for order_id, version in claims:
            await self._session.execute(
                update(OrderRow)
                .where(OrderRow.id == order_id, OrderRow.version == version)
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )

    async def release_all_leases(self) -> int:
        result = await self._session.execute(
            update(OrderRow)
            .where(OrderRow.status == OrderStatus.PENDING.value, OrderRow.lease_until.is_not(None))
            .values(lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))
