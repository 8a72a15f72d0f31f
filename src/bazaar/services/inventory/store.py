"""The inventory's tables and the repository that maps them to the domain.

Concurrency: every change runs in one `Database.transaction()`. On SQLite the platform
begins it IMMEDIATE, so writers run one after another and each reads the latest commit.
On PostgreSQL the repository locks what it reads for a change (SELECT ... FOR UPDATE),
stock always in product_id order, so two orders touching the same products wait for each
other instead of deadlocking or overselling."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import UtcDateTime
from bazaar.services.inventory.domain import (
    Adjustment,
    Line,
    Reservation,
    ReservationState,
    Stock,
)

metadata = MetaData()

stock_table = Table(
    "stock",
    metadata,
    Column("product_id", String(100), primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The database refuses an oversell even if a bug in the code above tried one.
    CheckConstraint("reserved >= 0 AND on_hand >= reserved", name="ck_stock_not_oversold"),
)

reservations_table = Table(
    "reservations",
    metadata,
    Column("order_id", String(100), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("short_product_ids", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

reservation_lines_table = Table(
    "reservation_lines",
    metadata,
    Column(
        "order_id",
        String(100),
        ForeignKey("reservations.order_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("product_id", String(100), primary_key=True),
    Column("line_no", Integer, nullable=False),
    Column("qty", Integer, nullable=False),
)

adjustments_table = Table(
    "stock_adjustments",
    metadata,
    # Room for "seed:" before a product id (see domain.seed_adjustment).
    Column("request_id", String(110), primary_key=True),
    Column("product_id", String(100), nullable=False),
    Column("delta", Integer, nullable=False),
    # The level the adjustment produced: a retry gets the same answer.
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)


# The statements every Reserve and Commit runs, built once: SQLAlchemy then reuses their
# compiled SQL without building and keying a new statement per call (a tenth of a
# millisecond each); the values are bound at execution.
_STOCK_FOR_UPDATE = (
    select(stock_table)
    .where(stock_table.c.product_id.in_(bindparam("product_ids", expanding=True)))
    .order_by(stock_table.c.product_id)
    .with_for_update()
)
_UPDATE_STOCK = (
    update(stock_table)
    .where(stock_table.c.product_id == bindparam("id"))
    .values(
        on_hand=bindparam("on_hand"),
        reserved=bindparam("reserved"),
        version=bindparam("version"),
        updated_at=bindparam("updated_at"),
    )
)
# A reservation with its lines in one statement; on PostgreSQL the reservation's row is
# locked (FOR UPDATE OF: the lines are only read). Safe because lines never change once
# written: a wait on the lock re-reads the reservation's row, not the joined lines.
_RESERVATION_FOR_UPDATE = (
    select(
        reservations_table.c.state,
        reservations_table.c.short_product_ids,
        reservation_lines_table.c.product_id,
        reservation_lines_table.c.qty,
    )
    .select_from(
        reservations_table.outerjoin(
            reservation_lines_table,
            reservation_lines_table.c.order_id == reservations_table.c.order_id,
        )
    )
    .where(reservations_table.c.order_id == bindparam("order_id"))
    .order_by(reservation_lines_table.c.line_no)
    .with_for_update(of=reservations_table)
)
_UPDATE_RESERVATION_STATE = (
    update(reservations_table)
    .where(reservations_table.c.order_id == bindparam("id"))
    .values(state=bindparam("state"), updated_at=bindparam("updated_at"))
)


def _now() -> datetime:
    return datetime.now(UTC)


class InventoryRepository:
    """Loads and saves stock, reservations and adjustments inside one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._stored: set[str] = set()  # products whose stock row exists: update, not insert

    # --- stock ---

    async def stock_for_update(self, product_ids: Iterable[str]) -> dict[str, Stock]:
        """The stock of these products (the unknown ones left out), locked for this
        transaction in product_id order."""
        wanted = sorted(set(product_ids))
        if not wanted:
            return {}
        rows = await self._session.execute(_STOCK_FOR_UPDATE, {"product_ids": wanted})
        found = {row.product_id: _stock(row) for row in rows}
        self._stored.update(found)
        return found

    async def stock_levels(self, product_ids: Iterable[str] = ()) -> list[Stock]:
        """Unlocked read, in product_id order; no ids: every product."""
        query = select(stock_table).order_by(stock_table.c.product_id)
        wanted = set(product_ids)
        if wanted:
            query = query.where(stock_table.c.product_id.in_(sorted(wanted)))
        return [_stock(row) for row in await self._session.execute(query)]

    async def save_stock(self, changed: Iterable[Stock]) -> None:
        """Write these levels: one UPDATE for the stored products, one INSERT for new ones."""
        now = _now()
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for stock in changed:
            values = {
                "on_hand": stock.on_hand,
                "reserved": stock.reserved,
                "version": stock.version,
                "updated_at": now,
            }
            if stock.product_id in self._stored:
                updates.append({"id": stock.product_id, **values})
            else:
                inserts.append({"product_id": stock.product_id, **values})
        if updates:
            await self._session.execute(_UPDATE_STOCK, updates)
        if inserts:
            await self._session.execute(insert(stock_table), inserts)
            self._stored.update(values["product_id"] for values in inserts)

    # --- reservations ---

    async def reservation_for_update(self, order_id: str) -> Reservation | None:
        rows = (await self._session.execute(_RESERVATION_FOR_UPDATE, {"order_id": order_id})).all()
        if not rows:
            return None
        return Reservation(
            order_id=order_id,
            state=ReservationState(rows[0].state),
            lines=tuple(Line(row.product_id, row.qty) for row in rows if row.product_id),
            short_product_ids=tuple(rows[0].short_product_ids),
        )

    async def add_reservation(self, reservation: Reservation) -> None:
        now = _now()
        await self._session.execute(
            insert(reservations_table),
            {
                "order_id": reservation.order_id,
                "state": reservation.state.value,
                "short_product_ids": list(reservation.short_product_ids),
                "created_at": now,
                "updated_at": now,
            },
        )
        await self._session.execute(
            insert(reservation_lines_table),
            [
                {
                    "order_id": reservation.order_id,
                    "product_id": line.product_id,
                    "line_no": number,
                    "qty": line.qty,
                }
                for number, line in enumerate(reservation.lines)
            ],
        )

    async def save_reservation_state(self, reservation: Reservation) -> None:
        await self._session.execute(
            _UPDATE_RESERVATION_STATE,
            {"id": reservation.order_id, "state": reservation.state.value, "updated_at": _now()},
        )

    # --- adjustments ---

    async def adjustment(self, request_id: str) -> Adjustment | None:
        row = (
            await self._session.execute(
                select(adjustments_table).where(adjustments_table.c.request_id == request_id)
            )
        ).one_or_none()
        if row is None:
            return None
        result = Stock(row.product_id, row.on_hand, row.reserved, row.version)
        return Adjustment(row.request_id, row.product_id, row.delta, result)

    async def add_adjustment(self, adjustment: Adjustment) -> None:
        result = adjustment.result
        await self._session.execute(
            insert(adjustments_table).values(
                request_id=adjustment.request_id,
                product_id=adjustment.product_id,
                delta=adjustment.delta,
                on_hand=result.on_hand,
                reserved=result.reserved,
                version=result.version,
                created_at=_now(),
            )
        )


def _stock(row: Row[Any]) -> Stock:
    return Stock(row.product_id, row.on_hand, row.reserved, row.version)
