"""The repository's own guards, below the service layer's checks."""

from bazaar.platform.db import Database
from bazaar.services.catalog.domain import Category, StockLevel
from bazaar.services.catalog.store import CatalogRepository


async def test_the_stock_upsert_never_lowers_the_version(db: Database) -> None:
    # Two replicas may both pass the service layer's check; the statement decides.
    async with db.transaction() as session:
        repository = CatalogRepository(session)
        await repository.save_stock_if_newer(StockLevel("p", 5, 5))
        await repository.save_stock_if_newer(StockLevel("p", 9, 3))
        await repository.save_stock_if_newer(StockLevel("p", 8, 5))
    async with db.transaction() as session:
        assert await CatalogRepository(session).stock("p") == StockLevel("p", 5, 5)
    async with db.transaction() as session:
        await CatalogRepository(session).save_stock_if_newer(StockLevel("p", 1, 6))
    async with db.transaction() as session:
        assert await CatalogRepository(session).stock("p") == StockLevel("p", 1, 6)


async def test_seeding_stock_only_fills_gaps(db: Database) -> None:
    async with db.transaction() as session:
        repository = CatalogRepository(session)
        await repository.save_stock_if_newer(StockLevel("p", 2, 4))
        assert not await repository.add_stock_if_absent(StockLevel("p", 50, 0))
        assert await repository.add_stock_if_absent(StockLevel("q", 50, 0))
        assert await repository.stock("p") == StockLevel("p", 2, 4)


async def test_existing_category_names_are_kept(db: Database) -> None:
    async with db.transaction() as session:
        repository = CatalogRepository(session)
        assert await repository.add_missing_categories([Category("toys", "Toys & Games")]) == 1
        added = await repository.add_missing_categories(
            [Category("toys", "Toys"), Category("books", "Books")]
        )
        assert added == 1
        assert await repository.categories() == [
            Category("books", "Books"),
            Category("toys", "Toys & Games"),
        ]
