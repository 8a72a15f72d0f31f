"""Alembic, per service: each service keeps its revisions in `<service>/migrations/`.

A service's `migrations/env.py` is one call to `run_alembic_env(metadata)`; `migrate()` is
what the runner, the tests and `bazaar migrate` call to bring a database to head.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from bazaar.platform import messaging_tables
from bazaar.platform.db import create_engine

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: a serving process that migrated in a child (see
# cli.prepare) never loads it.


def alembic_config(migrations_dir: Path, url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


# The advisory lock every migration of a PostgreSQL database takes (any constant will
# do: advisory locks are per database).
_LOCK = 0x6261_7A61_6172  # "bazaar"


def migrate(migrations_dir: Path, url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (blocking; run it before serving)."""
    from alembic import command

    command.upgrade(alembic_config(migrations_dir, url), revision)


def new_revision(migrations_dir: Path, message: str) -> Path:
    """Write the next revision of a service's migrations: what its tables declare that its
    migrations do not create yet (Alembic's autogenerate, against a scratch SQLite database
    brought to head). Revisions are numbered 0001, 0002, ... Returns the new file."""
    import tempfile

    from alembic import command
    from alembic.script import ScriptDirectory

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'head.db'}"
        migrate(migrations_dir, url)
        config = alembic_config(migrations_dir, url)
        head = ScriptDirectory.from_config(config).get_current_head()
        number = int(head) + 1 if head and head.isdigit() else 1
        script = command.revision(
            config, message=message, autogenerate=True, rev_id=f"{number:04d}"
        )
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def run_alembic_env(metadata: MetaData, *, messaging: bool = True) -> None:
    """The body of every service's `migrations/env.py`. `messaging` adds the outbox and
    inbox tables, which every service that publishes or consumes events needs."""
    from alembic import context

    targets = [metadata, messaging_tables.metadata] if messaging else [metadata]
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by alembic_config()"

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=targets,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas that migrate as they start take turns (the lock is the
                # transaction's): the later ones then find the database at head.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            context.run_migrations()

    async def run_async() -> None:
        engine = create_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=targets, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run_async())
    else:  # called from inside a running loop (an async test): run on a fresh thread's loop
        import threading

        thread = threading.Thread(target=lambda: asyncio.run(run_async()))
        thread.start()
        thread.join()


def create_messaging_tables() -> None:
    """In the first migration of a service that publishes or consumes events: the inbox
    and outbox tables as `messaging_tables` declares them. Spelled out, not derived from
    the metadata, so a later change of the tables needs (and gets) its own revision."""
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"], unique=False)


def drop_messaging_tables() -> None:
    """The downgrade of `create_messaging_tables`."""
    from alembic import op

    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("inbox")
