"""The platform's Flask module (bazaar.platform.flaskapp), tested here where it is used."""

from pathlib import Path

import pytest
from sqlalchemy import text

from bazaar.platform.flaskapp import SyncDatabase, sync_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:////tmp/auth.db", "sqlite:////tmp/auth.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        (
            "postgresql+asyncpg://bazaar:s%40cret@db:5432/auth",
            "postgresql+psycopg://bazaar:s%40cret@db:5432/auth",
        ),
        ("postgresql+psycopg2://u:p@db/auth", "postgresql+psycopg2://u:p@db/auth"),
        ("mysql+aiomysql://u:p@db/auth", "mysql+pymysql://u:p@db/auth"),
    ],
)
def test_the_async_url_maps_to_a_sync_driver(url: str, expected: str) -> None:
    assert sync_url(url) == expected


def test_the_sync_sqlite_engine_is_tuned_like_the_async_one(tmp_path: Path) -> None:
    db = SyncDatabase(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'x.db'}")
    try:
        db.ping()
        with db.transaction() as session:
            assert session.scalar(text("PRAGMA journal_mode")) == "wal"
            assert session.scalar(text("PRAGMA busy_timeout")) == 10000
        assert db.is_sqlite
        assert (tmp_path / "nested" / "x.db").exists()
    finally:
        db.dispose()


def test_a_failed_unit_of_work_leaves_nothing(tmp_path: Path) -> None:
    db = SyncDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
        with pytest.raises(RuntimeError), db.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("boom")
        with db.transaction() as session:
            assert session.scalar(text("SELECT count(*) FROM t")) == 0
    finally:
        db.dispose()


def test_a_read_runs_beside_an_open_unit_of_work(tmp_path: Path) -> None:
    db = SyncDatabase(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with db.transaction() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
        with db.transaction() as writer:  # holds SQLite's write lock until it ends
            writer.execute(text("INSERT INTO t VALUES (1)"))
            with db.reading() as reader:  # would wait 10 s if it asked for the lock
                assert reader.scalar(text("SELECT count(*) FROM t")) == 0
        with db.reading() as reader:
            assert reader.scalar(text("SELECT count(*) FROM t")) == 1
    finally:
        db.dispose()
