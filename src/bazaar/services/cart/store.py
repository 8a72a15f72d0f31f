"""The carts and their lines, and the repository that loads and saves a whole cart.

SQLAlchemy Core throughout: a cart is two small tables, read in one statement and
written with as few as the change needs."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import UtcDateTime
from bazaar.services.cart.domain import MAX_QTY, Cart

metadata = MetaData()

carts = Table(
    "carts",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

cart_lines = Table(
    "cart_lines",
    metadata,
    Column(
        "user_id",
        String(255),
        ForeignKey("carts.user_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("product_id", String(64), primary_key=True),
    Column("qty", Integer, nullable=False),
    # Keeps the lines in the order the user added them.
    Column("position", Integer, nullable=False),
    CheckConstraint(f"qty BETWEEN 1 AND {MAX_QTY}", name="qty_in_range"),
)


# The statements of every add to cart, checkout and order, built once: SQLAlchemy then
# reuses their compiled SQL without building and keying a new statement per call; the
# values are bound at execution.
_CART = (
    select(carts.c.version, cart_lines.c.product_id, cart_lines.c.qty)
    .select_from(carts.outerjoin(cart_lines, cart_lines.c.user_id == carts.c.user_id))
    .where(carts.c.user_id == bindparam("user_id"))
    .order_by(cart_lines.c.position)
)
_NEXT_VERSION = (
    update(carts)
    .where(carts.c.user_id == bindparam("id"), carts.c.version == bindparam("loaded"))
    .values(version=bindparam("saved"), updated_at=bindparam("now"))
)
_DELETE_LINES = delete(cart_lines).where(cart_lines.c.user_id == bindparam("user_id"))
# Its own statement, before `_CART`: under READ COMMITTED the read after the wait sees the
# lines the previous holder committed (a FOR UPDATE on the join would see the new version
# beside the old lines).
_LOCK = select(carts.c.version).where(carts.c.user_id == bindparam("user_id")).with_for_update()


class StaleCart(Exception):
    """Another transaction saved the cart since it was loaded: load it again and retry."""


class CartRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        # Carts known (in this transaction) to have no lines stored: nothing to delete.
        self._known_empty: set[str] = set()

    async def get(self, user_id: str) -> Cart:
        """The user's cart; a user who never had one has an empty one (version 0). One
        statement, so the version and the lines are of one snapshot (no lock: `save`
        checks the version)."""
        rows = (await self._session.execute(_CART, {"user_id": user_id})).all()
        if not rows:
            return Cart(user_id)
        lines = {product_id: qty for _, product_id, qty in rows if product_id is not None}
        if not lines:
            self._known_empty.add(user_id)
        return Cart(user_id, lines, rows[0].version)

    async def get_for_change(self, user_id: str) -> Cart:
        """The user's cart, for a change saved in this transaction. On PostgreSQL the
        cart's row is locked first, so concurrent changes of one cart wait for each other
        instead of failing `save`'s version check (twenty concurrent adds used up any
        number of optimistic retries). SQLite's writers already take turns, so no lock."""
        bind = self._session.get_bind()
        if bind.dialect.name != "sqlite":
            await self._session.execute(_LOCK, {"user_id": user_id})
        return await self.get(user_id)

    async def save(self, cart: Cart) -> None:
        """Write the cart's lines, if nobody saved it since it was loaded."""
        now = datetime.now(UTC)
        if cart.version == 0:
            # A concurrent first save fails here on the primary key (IntegrityError).
            await self._session.execute(
                insert(carts), {"user_id": cart.user_id, "version": 1, "updated_at": now}
            )
        else:
            result = await self._session.execute(
                _NEXT_VERSION,
                {"id": cart.user_id, "loaded": cart.version, "saved": cart.version + 1, "now": now},
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise StaleCart(f"the cart of {cart.user_id} changed concurrently")
            # A cart has at most 50 lines: rewriting them all is simpler than a diff. One
            # loaded empty in this transaction has none to delete (the version check above
            # says nobody saved it since).
            if cart.user_id not in self._known_empty:
                await self._session.execute(_DELETE_LINES, {"user_id": cart.user_id})
        if cart.lines:
            await self._session.execute(
                insert(cart_lines),
                [
                    {"user_id": cart.user_id, "product_id": p, "qty": q, "position": i}
                    for i, (p, q) in enumerate(cart.lines.items())
                ],
            )
            self._known_empty.discard(cart.user_id)
        else:
            self._known_empty.add(cart.user_id)
        cart.version += 1
