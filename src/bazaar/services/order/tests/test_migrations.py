from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from bazaar.platform import messaging_tables
from bazaar.platform.migrations import migrate
from bazaar.services.order.bootstrap import MIGRATIONS
from bazaar.services.order.store import metadata


def test_migrations_build_exactly_the_models_tables(tmp_path: Path) -> None:
    path = tmp_path / "order.db"
    migrate(MIGRATIONS, f"sqlite+aiosqlite:///{path}")
    migrate(MIGRATIONS, f"sqlite+aiosqlite:///{path}")  # a second run is a no-op
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        assert {"orders", "order_items", "inbox", "outbox"} <= tables
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        targets = [metadata, messaging_tables.metadata]
        assert compare_metadata(context, targets) == []  # type: ignore[arg-type]
    engine.dispose()
