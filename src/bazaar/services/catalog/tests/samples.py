"""Test data shared by the catalog's tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bazaar.platform.brokers.memory import broker_named
from bazaar.platform.db import Database
from bazaar.platform.events import DEADLETTER_ERROR_HEADER, Envelope, new_event
from bazaar.services.catalog.domain import Category
from bazaar.services.catalog.handlers import CatalogService, ProductDraft, SeedItem, SeedSummary

# (id, name, description, category, price_cents, stock)
PRODUCTS = [
    ("p-anvil", "Anvil", "Heavy and reliable, for cartoon physics.", "tools", 9900, 3),
    ("p-hammer", "Hammer", "A claw hammer with an ash handle.", "tools", 1990, 12),
    ("p-kettle", "Kettle", "Whistling steel KETTLE for the stove.", "kitchen", 2590, 0),
    ("p-mug-b", "Mug", "Blue stoneware, 350 ml.", "kitchen", 890, 40),
    ("p-mug-a", "Mug", "Red stoneware, 350 ml.", "kitchen", 890, 25),
    ("p-teapot", "Teapot", "Cast iron; pairs with the kettle.", "kitchen", 4200, 7),
    ("p-socks", "Wool Socks", "100% merino, size 42_45.", "apparel", 1500, 60),
]
# The listing's order: by name, then id.
ORDERED_IDS = [
    "p-anvil", "p-hammer", "p-kettle", "p-mug-a", "p-mug-b", "p-teapot", "p-socks",
]  # fmt: skip


async def seed_products(db: Database) -> SeedSummary:
    items = [
        SeedItem(ProductDraft(name, text, category, price, "", product_id=pid), stock)
        for pid, name, text, category, price, stock in PRODUCTS
    ]
    return await CatalogService(db).seed([Category("kitchen", "Kitchen & Dining")], items)


def stock_changed(
    product_id: str, available: int, version: int, override: dict[str, Any] | None = None
) -> Envelope:
    """A `stock.changed` as inventory sends it; `override` replaces or adds data fields."""
    data = {
        "product_id": product_id,
        "on_hand": available + 1,
        "reserved": 1,
        "available": available,
        "version": version,
        **(override or {}),
    }
    return new_event("stock.changed", "inventory", data, subject=product_id)


def event_with_id(event_id: str, product_id: str, available: int, version: int) -> Envelope:
    return Envelope(
        id=event_id,
        type="stock.changed",
        source="/bazaar/inventory",
        subject=product_id,
        time=datetime.now(UTC),
        data=stock_changed(product_id, available, version).data,
    )


@dataclass
class DeadLetters:
    """What the platform moved to `bazaar.deadletter.catalog.*` on the in-memory broker
    `broker` (`memory://<broker>`), with each error, read when asked."""

    broker: str

    @property
    def bodies(self) -> list[bytes]:
        return [letter.message.body for letter in self._letters()]

    @property
    def errors(self) -> list[str]:
        return [
            letter.message.headers.get(DEADLETTER_ERROR_HEADER, "") for letter in self._letters()
        ]

    def _letters(self) -> list[Any]:
        return list(broker_named(self.broker).dead_letters.values())
