"""The service layer: one method per use case, each change one unit of work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.contracts.events import OrderCreated
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.services.cart import domain
from bazaar.services.cart.domain import Cart, PricedCart, Quote
from bazaar.services.cart.pricing import Pricing
from bazaar.services.cart.store import CartRepository, StaleCart

# A change that lost a race is redone on the fresh cart. With the row lock of
# `get_for_change` that is only the first save of a new cart (two inserts of its key).
ATTEMPTS = 5


@dataclass(frozen=True)
class CartService:
    """The cart use cases: the carts' database, and the catalog's prices."""

    db: Database
    pricing: Pricing

    async def view(self, user_id: str) -> PricedCart:
        return await self._priced(await self.contents(user_id))

    async def contents(self, user_id: str) -> Cart:
        async with self.db.reading() as session:
            return await CartRepository(session).get(user_id)

    async def add_item(self, user_id: str, product_id: str, qty: int) -> PricedCart:
        # Ask the catalog first, outside the transaction: no lock is held while we wait.
        quoted = await self.pricing.quote([product_id])
        if product_id not in quoted:
            raise domain.UnknownProduct(f"no such product: {product_id}")
        cart = await self._change(user_id, lambda c: c.add(product_id, qty))
        return await self._priced(cart, quoted)

    async def set_quantity(self, user_id: str, product_id: str, qty: int) -> PricedCart:
        cart = await self._change(user_id, lambda c: c.set_quantity(product_id, qty))
        return await self._priced(cart)

    async def remove_item(self, user_id: str, product_id: str) -> PricedCart:
        cart = await self._change(user_id, lambda c: c.remove(product_id))
        return await self._priced(cart)

    async def remove_ordered(
        self, session: AsyncSession, order: OrderCreated, event: Envelope
    ) -> None:
        """An order was placed: take its quantities out of the cart. Runs inside the inbox's
        transaction, so it happens once per event; a lost race raises and the event is
        delivered again."""
        repository = CartRepository(session)
        cart = await repository.get_for_change(order.user_id)
        if cart.remove_ordered(order.quantities()):
            await repository.save(cart)

    async def _change(self, user_id: str, change: Callable[[Cart], None]) -> Cart:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.db.transaction() as session:
                    repository = CartRepository(session)
                    cart = await repository.get_for_change(user_id)
                    change(cart)
                    await repository.save(cart)
                return cart
            except (StaleCart, IntegrityError):
                if attempt == ATTEMPTS:
                    raise StaleCart(f"the cart of {user_id} keeps changing; try again") from None
        raise AssertionError("unreachable")

    async def _priced(self, cart: Cart, quoted: Mapping[str, Quote] | None = None) -> PricedCart:
        """The cart at the catalog's prices; quotes just `quoted` are not asked for again."""
        quotes = dict(quoted or {})
        unquoted = [product_id for product_id in cart.lines if product_id not in quotes]
        if unquoted:
            quotes.update(await self.pricing.quote(unquoted))
        return domain.price(cart, quotes)
