"""The orders tables and their repository. The saga's state lives in the order row, so
that whatever process picks the order up next knows exactly where it stands.

SQLAlchemy Core throughout: an order is read with one joined query (the order row once
per item) and written with one statement per table; no identity map, nothing loaded that
is not needed. The statements used on every order are built once, with bound parameters,
so that each execution skips building and hashing them again."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

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

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(100), nullable=False),
    Column("email", String(320), nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("reason", String(30), nullable=True),
    Column("total_cents", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("saga_step", String(20), nullable=False),
    Column("saga_attempts", Integer, nullable=False, default=0),
    Column("saga_reason", String(30), nullable=True),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("deadline", UtcDateTime(), nullable=True),
    # Set while a saga runner works on the order, so that no other runner does.
    Column("lease_until", UtcDateTime(), nullable=True),
    # Optimistic concurrency and fencing: every saga write checks and bumps it.
    Column("version", Integer, nullable=False, default=0),
    # The W3C trace context (JSON) of the checkout that made the order: a saga resumed by
    # another runner, after a crash or a wait, links its trace back to the checkout's.
    Column("trace_context", Text, nullable=True),
    # The same Idempotency-Key from the same user is the same order; NULLs never clash.
    UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_key"),
    Index("ix_orders_user_created", "user_id", "created_at"),
    Index("ix_orders_due", "status", "next_attempt_at"),
)

order_items = Table(
    "order_items",
    metadata,
    Column(
        "order_id",
        String(36),
        ForeignKey("orders.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    Column("product_id", String(100), nullable=False),
    Column("name", Text, nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
)

_ITEM_COLUMNS = (
    order_items.c.position,
    order_items.c.product_id,
    order_items.c.name,
    order_items.c.qty,
    order_items.c.unit_price_cents,
)


def _with_items(*conditions: Any) -> Select[Any]:
    """Orders with their items: one row per item (every order has at least one), the
    items of one order next to each other and in cart order."""
    return (
        select(*orders.c, *_ITEM_COLUMNS)
        .join_from(orders, order_items, order_items.c.order_id == orders.c.id)
        .where(*conditions)
    )


_BY_ID = _with_items(orders.c.id == bindparam("order_id")).order_by(order_items.c.position)
_OF_USER = _with_items(
    orders.c.id == bindparam("order_id"), orders.c.user_id == bindparam("user_id")
).order_by(order_items.c.position)
_BY_KEY = _with_items(
    orders.c.user_id == bindparam("user_id"), orders.c.idempotency_key == bindparam("key")
).order_by(order_items.c.position)
_INSERT_ORDER = insert(orders)
_INSERT_ITEMS = insert(order_items)
# The other columns to set come with each execution's parameters (named as the columns).
_SAVE = (
    update(orders)
    .where(orders.c.id == bindparam("order_id"), orders.c.version == bindparam("expected"))
    .values(version=orders.c.version + 1)
)


def _saga_columns(order: Order) -> dict[str, Any]:
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


def _order_of(rows: Sequence[Row[Any]]) -> Order:
    """The order in `rows` of `_with_items` (one per item, in position order)."""
    first = rows[0]
    return Order(
        id=first.id,
        user_id=first.user_id,
        email=first.email,
        items=tuple(
            LineItem(row.product_id, row.name, row.qty, row.unit_price_cents) for row in rows
        ),
        total_cents=first.total_cents,
        status=OrderStatus(first.status),
        reason=CancelReason(first.reason) if first.reason else None,
        created_at=first.created_at,
        updated_at=first.updated_at,
        saga=Saga(
            step=Step(first.saga_step),
            next_attempt_at=first.next_attempt_at,
            attempts=first.saga_attempts,
            deadline=first.deadline,
            reason=CancelReason(first.saga_reason) if first.saga_reason else None,
        ),
        version=first.version,
    )


def _orders_of(rows: Iterable[Row[Any]]) -> list[Order]:
    """The orders in `rows` of `_with_items`, grouped by order id, in their order."""
    return [_order_of(list(group)) for _, group in groupby(rows, key=lambda row: row.id)]


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        order: Order,
        idempotency_key: str | None,
        *,
        lease_until: datetime | None = None,
        trace_context: Mapping[str, str] | None = None,
    ) -> None:
        """Insert a new order; `lease_until` inserts it already held by a saga runner
        (at the order's version), which then needs no claim to start its saga. A duplicate
        idempotency key fails here, inside the caller's transaction. `trace_context` (W3C
        headers) is the trace its saga belongs to."""
        await self._session.execute(
            _INSERT_ORDER,
            {
                "trace_context": json.dumps(dict(trace_context)) if trace_context else None,
                "id": order.id,
                "user_id": order.user_id,
                "email": order.email,
                "idempotency_key": idempotency_key,
                "total_cents": order.total_cents,
                "created_at": order.created_at,
                "lease_until": lease_until,
                "version": order.version,
                **_saga_columns(order),
            },
        )
        await self._session.execute(
            _INSERT_ITEMS,
            [
                {
                    "order_id": order.id,
                    "position": position,
                    "product_id": item.product_id,
                    "name": item.name,
                    "qty": item.qty,
                    "unit_price_cents": item.unit_price_cents,
                }
                for position, item in enumerate(order.items)
            ],
        )

    async def get(self, order_id: str) -> Order | None:
        return await self._one(_BY_ID, {"order_id": order_id})

    async def trace_context(self, order_id: str) -> dict[str, str]:
        """The W3C headers of the checkout's trace ({} if it was not traced)."""
        stored = await self._session.scalar(
            select(orders.c.trace_context).where(orders.c.id == order_id)
        )
        try:
            context = json.loads(stored) if stored else {}
        except ValueError:
            return {}
        if not isinstance(context, dict):
            return {}
        return {str(k): str(v) for k, v in context.items()}

    async def of_user(self, user_id: str, order_id: str) -> Order | None:
        return await self._one(_OF_USER, {"order_id": order_id, "user_id": user_id})

    async def by_idempotency_key(self, user_id: str, key: str) -> Order | None:
        return await self._one(_BY_KEY, {"user_id": user_id, "key": key})

    async def _one(self, query: Select[Any], params: dict[str, str]) -> Order | None:
        rows = (await self._session.execute(query, params)).all()
        return _order_of(rows) if rows else None

    async def newest_of_user(self, user_id: str, limit: int = LIST_LIMIT) -> list[Order]:
        newest = (
            select(orders.c.id)
            .where(orders.c.user_id == user_id)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(limit)
            .scalar_subquery()
        )
        query = _with_items(orders.c.id.in_(newest)).order_by(
            orders.c.created_at.desc(), orders.c.id.desc(), order_items.c.position
        )
        return _orders_of(await self._session.execute(query))

    async def save(self, order: Order, *, lease_until: datetime | None) -> Order | None:
        """Write the order's new state if nobody wrote since it was read (its `version`);
        returns it with the bumped version, or None when the write lost that race."""
        result = await self._session.execute(
            _SAVE,
            {
                "order_id": order.id,
                "expected": order.version,
                "lease_until": lease_until,
                **_saga_columns(order),
            },
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
            select(orders.c.id, orders.c.version)
            .where(
                orders.c.status == OrderStatus.PENDING.value,
                orders.c.next_attempt_at <= now,
                or_(orders.c.lease_until.is_(None), orders.c.lease_until <= now),
            )
            .order_by(orders.c.next_attempt_at)
            .limit(limit)
        )
        if exclude:
            query = query.where(orders.c.id.not_in(list(exclude)))
        if self._session.get_bind().dialect.name != "sqlite":
            # Replicas claim side by side without waiting on each other's rows.
            query = query.with_for_update(skip_locked=True)
        claimed = (await self._session.execute(query)).all()
        if not claimed:
            return []
        await self._session.execute(
            update(orders)
            .where(orders.c.id.in_([order_id for order_id, _ in claimed]))
            .values(lease_until=lease_until, version=orders.c.version + 1)
        )
        return [(order_id, version + 1) for order_id, version in claimed]

    async def release_leases(self, claims: Sequence[tuple[str, int]]) -> None:
        """Give leases back (at shutdown) so that the next runner need not wait them out."""
        for order_id, version in claims:
            await self._session.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.version == version)
                .values(lease_until=None)
            )

    async def release_all_leases(self) -> int:
        result = await self._session.execute(
            update(orders)
            .where(orders.c.status == OrderStatus.PENDING.value, orders.c.lease_until.is_not(None))
            .values(lease_until=None)
        )
        return int(getattr(result, "rowcount", 0))

    async def oldest_pending_since(self) -> datetime | None:
        """When the oldest pending order was made (None: nothing pending). The status
        index keeps the scan to the pending rows."""
        created: datetime | None = await self._session.scalar(
            select(func.min(orders.c.created_at)).where(
                orders.c.status == OrderStatus.PENDING.value
            )
        )
        return created
