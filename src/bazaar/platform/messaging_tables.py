"""The outbox and inbox tables. Every service that publishes or consumes events has both in
its own database; `run_alembic_env` adds this metadata to the service's own, so a
service's first migration creates them."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Integer, MetaData, String, Table

from bazaar.platform.db import UtcDateTime

metadata = MetaData()

outbox = Table(
    "outbox",
    metadata,
    # BigInteger on PostgreSQL, INTEGER (rowid, monotonic) on SQLite: publication order.
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(100), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime(), nullable=True, index=True),
)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", UtcDateTime(), nullable=False),
)
