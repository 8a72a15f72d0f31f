"""What the seed loaded is recorded as an adjustment ("seed:<product>"), so that stock can
be proven conserved: adjustments = on hand + sold (`bazaar check`)."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bazaar.platform.db import Database
from bazaar.platform.migrations import migrate
from bazaar.services.inventory import domain
from bazaar.services.inventory.bootstrap import MIGRATIONS
from bazaar.services.inventory.domain import (
    AdjustStock,
    CommitReservation,
    InvalidRequest,
    Line,
    ReserveStock,
    SeedStock,
)
from bazaar.services.inventory.handlers import InventoryService
from bazaar.services.inventory.store import adjustments_table


async def received(db: Database) -> dict[str, int]:
    async with db.reading() as session:
        rows = await session.execute(
            select(adjustments_table.c.product_id, func.sum(adjustments_table.c.delta)).group_by(
                adjustments_table.c.product_id
            )
        )
        return {product_id: int(total) for product_id, total in rows}


def test_the_seed_adjustment_is_what_the_seed_created() -> None:
    created = domain.Stock("mug", on_hand=25, version=1)
    record = domain.seed_adjustment(created)
    assert (record.request_id, record.product_id, record.delta) == ("seed:mug", "mug", 25)
    assert record.result == created and record.result is not created


def test_a_client_cannot_use_the_seed_prefix() -> None:
    with pytest.raises(InvalidRequest, match="seed:"):
        AdjustStock("mug", 5, "seed:mug")


async def test_seeding_records_each_created_product_once(db: Database) -> None:
    service = InventoryService(db)
    await service.seed(SeedStock((("mug", 25), ("cup", 0))))
    await service.seed(SeedStock((("mug", 99), ("pan", 4))))  # mug already has stock
    await service.adjust(AdjustStock("mug", 5, "r-1"))
    assert await received(db) == {"mug": 30, "cup": 0, "pan": 4}
    async with db.reading() as session:
        ids = set(await session.scalars(select(adjustments_table.c.request_id)))
    assert ids == {"seed:mug", "seed:cup", "seed:pan", "r-1"}


async def test_received_equals_on_hand_plus_sold_after_a_sale(db: Database) -> None:
    service = InventoryService(db)
    longest = "p" * domain.MAX_ID_LENGTH  # its seed request id is longer than the id
    await service.seed(SeedStock((("mug", 10), (longest, 1))))
    await service.reserve(ReserveStock("o-1", (Line("mug", 3),)))
    await service.commit(CommitReservation("o-1"))
    (mug,) = await service.stock(domain.GetStock(("mug",)))
    assert (await received(db))["mug"] == mug.on_hand + 3 == 10


def test_the_migration_reconstructs_the_seed_of_products_stocked_before_it(
    tmp_path: Path,
) -> None:
    """A home seeded before revision 0002 gets a seed row per product that makes its
    history add up; a product created by an adjustment gets none."""
    import sqlite3

    path = tmp_path / "inventory.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(MIGRATIONS, url, "0001")
    now = "2026-01-01 00:00:00.000000"
    with sqlite3.connect(path) as connection:
        for table, values in [
            ("stock", ("mug", 7, 2, 4, now)),
            ("stock", ("new", 5, 0, 1, now)),
            ("reservations", ("o-1", "committed", "[]", now, now)),
            ("reservations", ("o-2", "reserved", "[]", now, now)),
            ("reservation_lines", ("o-1", "mug", 0, 3)),
            ("reservation_lines", ("o-2", "mug", 0, 2)),
            ("stock_adjustments", ("r-1", "new", 5, 5, 0, 1, now)),
        ]:
            marks = ", ".join("?" * len(values))
            connection.execute(f"INSERT INTO {table} VALUES ({marks})", values)
    migrate(MIGRATIONS, url)
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT request_id, product_id, delta FROM stock_adjustments ORDER BY request_id"
        ).fetchall()
    assert rows == [("r-1", "new", 5), ("seed:mug", "mug", 10)]
