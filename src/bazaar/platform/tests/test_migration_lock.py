"""Replicas that start together all migrate: on PostgreSQL they take turns on an advisory
lock, so the database reaches head once and none of them fails."""

import asyncio
import sys
from asyncio.subprocess import DEVNULL
from pathlib import Path

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url

from bazaar.testing import provisioned_database

ENV = """
from sqlalchemy import MetaData
from bazaar.platform.migrations import run_alembic_env

run_alembic_env(MetaData(), messaging=False)
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("things", sa.Column("id", sa.Integer(), primary_key=True))
    # Long enough that unlocked replicas would overlap and collide.
    op.execute("SELECT pg_sleep(0.5)")


def downgrade() -> None:
    op.drop_table("things")
"""


def migrations(folder: Path) -> Path:
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV)
    (folder / "versions" / "0001_things.py").write_text(REVISION)
    return folder


async def replica_migrating(folder: Path, url: str) -> int:
    """A process of its own, as a replica is (Alembic's context is one per process)."""
    code = "import sys; from pathlib import Path; from bazaar.platform.migrations import migrate; "
    code += "migrate(Path(sys.argv[1]), sys.argv[2])"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(folder), url, stdout=DEVNULL, stderr=DEVNULL
    )
    return await process.wait()


async def test_replicas_migrating_at_once_take_turns(tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations")
    async with provisioned_database("postgresql", MetaData(), tmp_path, "lock") as url:
        replicas = [replica_migrating(folder, url) for _ in range(3)]
        assert await asyncio.gather(*replicas) == [0, 0, 0]
        plain = make_url(url).set(drivername="postgresql").render_as_string(False)
        connection = await asyncpg.connect(plain)
        try:
            versions = await connection.fetch("SELECT version_num FROM alembic_version")
            tables = await connection.fetchval("SELECT count(*) FROM things")
        finally:
            await connection.close()
    assert [v["version_num"] for v in versions] == ["0001"]
    assert tables == 0
