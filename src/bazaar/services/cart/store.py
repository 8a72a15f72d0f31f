"""The carts and their lines, and the repository that loads and saves a whole cart."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bazaar.platform.db import UtcDateTime
from bazaar.services.cart.domain import MAX_QTY, Cart


class Base(DeclarativeBase):
    pass


class CartRow(Base):
    __tablename__ = "carts"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CartLineRow(Base):
    __tablename__ = "cart_lines"
    __table_args__ = (CheckConstraint(f"qty BETWEEN 1 AND {MAX_QTY}", name="qty_in_range"),)

    user_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("carts.user_id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    qty: Mapped[int] = mapped_column(Integer)
    # Keeps the lines in the order the user added them.
    position: Mapped[int] = mapped_column(Integer)


metadata = Base.metadata


class StaleCart(Exception):
    """Another transaction saved the cart since it was loaded: load it again and retry."""


class CartRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: str) -> Cart:
        """The user's cart; a user who never had one has an empty one (version 0)."""
        version = await self._session.scalar(
            select(CartRow.version).where(CartRow.user_id == user_id)
        )
        if version is None:
            return Cart(user_id)
        rows = await self._session.execute(
            select(CartLineRow.product_id, CartLineRow.qty)
            .where(CartLineRow.user_id == user_id)
            .order_by(CartLineRow.position)
        )
        return Cart(user_id, {product_id: qty for product_id, qty in rows}, version)

    async def save(self, cart: Cart) -> None:
        """Write the cart's lines, if nobody saved it since it was loaded."""
        now = datetime.now(UTC)
        if cart.version == 0:
            # A concurrent first save fails here on the primary key (IntegrityError).
            self._session.add(CartRow(user_id=cart.user_id, version=1, updated_at=now))
            await self._session.flush()
        else:
            result = await self._session.execute(
                update(CartRow)
                .where(CartRow.user_id == cart.user_id, CartRow.version == cart.version)
                .values(version=cart.version + 1, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise StaleCart(f"the cart of {cart.user_id} changed concurrently")
        # A cart has at most 50 lines: rewriting them all is simpler than a diff.
        await self._session.execute(delete(CartLineRow).where(CartLineRow.user_id == cart.user_id))
        if cart.lines:
            await self._session.execute(
                insert(CartLineRow),
                [
                    {"user_id": cart.user_id, "product_id": p, "qty": q, "position": i}
                    for i, (p, q) in enumerate(cart.lines.items())
                ],
            )
        cart.version += 1
