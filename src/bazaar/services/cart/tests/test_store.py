import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from bazaar.platform.db import Database
from bazaar.services.cart.domain import Cart
from bazaar.services.cart.handlers import CartService
from bazaar.services.cart.store import CartRepository, StaleCart
from bazaar.services.cart.tests.fakes import PRODUCTS, FakeCatalog


async def load(db: Database, user_id: str = "u1") -> Cart:
    async with db.transaction() as session:
        return await CartRepository(session).get(user_id)


async def save(db: Database, cart: Cart) -> None:
    async with db.transaction() as session:
        await CartRepository(session).save(cart)


async def test_a_saved_cart_loads_back_in_order(db: Database) -> None:
    cart = await load(db)
    assert (cart.lines, cart.version) == ({}, 0)
    cart.add("teapot", 1)
    cart.add("mug", 2)
    await save(db, cart)
    cart.remove("teapot")
    cart.add("spoon", 4)
    await save(db, cart)
    loaded = await load(db)
    assert list(loaded.lines.items()) == [("mug", 2), ("spoon", 4)]
    assert loaded.version == 2


async def test_a_stale_cart_is_not_saved_over_a_newer_one(db: Database) -> None:
    first, second = await load(db), await load(db)
    first.add("mug", 1)
    await save(db, first)
    second.add("teapot", 1)
    with pytest.raises(IntegrityError):  # both thought the cart was new
        await save(db, second)
    third, fourth = await load(db), await load(db)
    third.add("mug", 1)
    await save(db, third)
    fourth.add("spoon", 1)
    with pytest.raises(StaleCart):
        await save(db, fourth)
    assert (await load(db)).lines == {"mug": 2}


async def test_concurrent_adds_all_count(db: Database) -> None:
    carts = CartService(db, FakeCatalog(PRODUCTS))
    await asyncio.gather(*(carts.add_item("u1", "mug", 1) for _ in range(20)))
    assert (await load(db)).lines == {"mug": 20}
