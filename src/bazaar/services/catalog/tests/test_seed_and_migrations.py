import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from bazaar.platform.db import Database
from bazaar.platform.migrations import alembic_config, migrate
from bazaar.services.catalog import handlers
from bazaar.services.catalog.bootstrap import MIGRATIONS
from bazaar.services.catalog.domain import ProductQuery, StockLevel
from bazaar.services.catalog.seed import seed_from_file
from bazaar.services.catalog.settings import CatalogSettings
from bazaar.services.catalog.store import CatalogRepository

PRODUCTS = [
    {
        "id": "8bc49293-7040-525a-be36-aba82e274c4e",
        "name": "Cast Iron Skillet",
        "description": "Pre-seasoned.",
        "category": "kitchen",
        "price_cents": 3490,
        "stock": 30,
        "image_url": "",
    },
    {
        "id": "p-gnome",
        "name": "Garden Gnome",
        "description": "Guards the tulips.",
        "category": "home-garden",
        "price_cents": 1250,
        "stock": 4,
        "image_url": "/static/gnome.png",
    },
]


@pytest.fixture
def settings(tmp_path: Path) -> CatalogSettings:
    settings = CatalogSettings(home=tmp_path, environment="test")
    migrate(MIGRATIONS, settings.database_url)
    return settings


def write(folder: Path, content: Any) -> Path:
    path = folder / "products.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


async def catalog_state(settings: CatalogSettings) -> tuple[list[Any], list[Any], list[Any]]:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            repository = CatalogRepository(session)
            page = await repository.search(ProductQuery())
            categories = await repository.categories()
            stock = [await repository.stock(item.product.id) for item in page.items]
    finally:
        await db.dispose()
    return page.items, categories, stock


async def test_seed_loads_products_categories_and_stock_once(
    settings: CatalogSettings, tmp_path: Path
) -> None:
    path = write(tmp_path, PRODUCTS)
    first = await seed_from_file(settings, path)
    assert first == (
        "catalog: 2 products added, 0 already there; 2 categories and 2 stock levels added"
    )
    items, categories, stock = await catalog_state(settings)
    assert [(i.product.name, i.product.price_cents, i.stock) for i in items] == [
        ("Cast Iron Skillet", 3490, 30),
        ("Garden Gnome", 1250, 4),
    ]
    assert [(c.slug, c.name) for c in categories] == [
        ("home-garden", "Home Garden"),
        ("kitchen", "Kitchen"),
    ]
    assert stock == [
        StockLevel(str(PRODUCTS[0]["id"]), 30, 0),
        StockLevel("p-gnome", 4, 0),
    ]

    again = await seed_from_file(settings, path)
    assert again == (
        "catalog: 0 products added, 2 already there; 0 categories and 0 stock levels added"
    )
    assert await catalog_state(settings) == (items, categories, stock)


async def test_seed_takes_named_categories_and_keeps_newer_stock(
    settings: CatalogSettings, tmp_path: Path
) -> None:
    # inventory's first event got here before the seed ran: its version 1 stays.
    db = Database(settings.database_url)
    async with db.transaction() as session:
        await CatalogRepository(session).save_stock_if_newer(StockLevel("p-gnome", 2, 1))
    await db.dispose()
    path = write(
        tmp_path,
        {"categories": [{"slug": "home-garden", "name": "Home & Garden"}], "products": PRODUCTS},
    )
    assert "1 stock levels added" in await seed_from_file(settings, path)
    items, categories, stock = await catalog_state(settings)
    assert ("home-garden", "Home & Garden") in [(c.slug, c.name) for c in categories]
    assert stock[1] == StockLevel("p-gnome", 2, 1)
    assert items[1].stock == 2


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"products": "none"}),
        json.dumps([{**PRODUCTS[0], "price_cents": -1}, PRODUCTS[1]]),
        json.dumps([PRODUCTS[0], {**PRODUCTS[1], "category": "Home Garden"}]),
        json.dumps([{**PRODUCTS[0], "stock": -3}]),
        json.dumps([{k: v for k, v in PRODUCTS[0].items() if k != "id"}]),
    ],
)
async def test_a_bad_seed_file_is_refused_whole(
    settings: CatalogSettings, tmp_path: Path, content: str
) -> None:
    with pytest.raises(SystemExit, match="catalog seed: cannot load"):
        await seed_from_file(settings, write(tmp_path, content))
    assert await catalog_state(settings) == ([], [], [])


async def test_a_missing_seed_file_is_refused(settings: CatalogSettings, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="No such file"):
        await seed_from_file(settings, tmp_path / "nope.json")


async def test_migrations_go_up_down_and_up_again(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    migrate(MIGRATIONS, url)
    migrate(MIGRATIONS, url)  # already at head: nothing to do
    db = Database(url)
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    await db.dispose()
    assert {"categories", "products", "stock_levels", "inbox", "outbox"} <= tables
    command.downgrade(alembic_config(MIGRATIONS, url), "base")
    migrate(MIGRATIONS, url)


def test_the_command_line_seeds(settings: CatalogSettings, tmp_path: Path) -> None:
    env = {**os.environ, "BAZAAR_HOME": str(tmp_path), "BAZAAR_LOG_FORMAT": "console"}
    env.pop("BAZAAR_DATABASE_URL", None)
    seeded = subprocess.run(
        [sys.executable, "-m", "bazaar.services.catalog", "seed", str(write(tmp_path, PRODUCTS))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seeded.returncode == 0, seeded.stderr
    assert "2 products added" in seeded.stdout


async def test_seed_handler_counts_duplicates_in_one_file(tmp_path: Path) -> None:
    settings = CatalogSettings(home=tmp_path, environment="test")
    migrate(MIGRATIONS, settings.database_url)
    db = Database(settings.database_url)
    draft = handlers.ProductDraft("Mug", "", "kitchen", 890, "", product_id="p-mug")
    items = [handlers.SeedItem(draft, 5), handlers.SeedItem(draft, 9)]
    summary = await handlers.CatalogService(db).seed([], items)
    await db.dispose()
    assert summary == handlers.SeedSummary(
        categories_added=1, products_added=1, products_kept=1, stock_levels_added=1
    )
