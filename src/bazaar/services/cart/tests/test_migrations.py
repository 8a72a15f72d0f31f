from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bazaar.platform import messaging_tables
from bazaar.platform.migrations import migrate
from bazaar.services.cart.bootstrap import MIGRATIONS
from bazaar.services.cart.store import metadata


def test_migrations_build_exactly_the_models_tables(tmp_path: Path) -> None:
    path = tmp_path / "cart.db"
    migrate(MIGRATIONS, f"sqlite+aiosqlite:///{path}")
    migrate(MIGRATIONS, f"sqlite+aiosqlite:///{path}")  # a second run is a no-op
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        assert {"carts", "cart_lines", "inbox", "outbox"} <= tables
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        # Alembic accepts a list of metadata (as env.py passes it); its stub says one.
        targets = [metadata, messaging_tables.metadata]
        assert compare_metadata(context, targets) == []  # type: ignore[arg-type]
    engine.dispose()
