"""What the ops page shows besides traces, read where it lives, read-only: every process
and its health (the runner's `runner.json`, and a probe of each), each service's outbox
lag (its own database), the dead letters (the broker), the key rates (the spans of the
last minute), and an order's saga as its database row says it stands.

Like `bazaar check`, it reads the services' tables by name (declared below), never through
service code."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from bazaar.platform.db import UtcDateTime
from bazaar.platform.messaging_tables import outbox
from bazaar.runner.check import database_url, snapshot
from bazaar.runner.home import Home
from bazaar.runner.ops.otlp import Span
from bazaar.runner.probes import probe_for
from bazaar.runner.state import read_state
from bazaar.runner.topology import SERVICES

RATE_WINDOW_SECONDS = 60.0
BROKER_TIMEOUT = 2.0

_tables = MetaData()
orders = Table(
    "orders",
    _tables,
    Column("id", String, primary_key=True),
    Column("status", String),
    Column("reason", String),
    Column("total_cents", Integer),
    Column("saga_step", String),
    Column("saga_attempts", Integer),
    Column("next_attempt_at", UtcDateTime()),
    Column("deadline", UtcDateTime()),
    Column("created_at", UtcDateTime()),
    Column("updated_at", UtcDateTime()),
)


def processes(home: Home) -> list[dict[str, Any]]:
    """Every process the runner started (each replica too), as it says, with its health
    probed now."""
    state = read_state(home.state_file) or {}
    listed = [p for p in state.get("processes") or [] if isinstance(p, dict)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        healthy = list(pool.map(_healthy, listed))
    return [
        {
            "name": p.get("name"),
            "state": p.get("state"),
            "pid": p.get("pid"),
            "restarts": p.get("restarts", 0),
            "url": p.get("url"),
            "healthy": ok,
        }
        for p, ok in zip(listed, healthy, strict=True)
    ]


def _healthy(process: Mapping[str, Any]) -> bool:
    target = process.get("health")
    return bool(target) and process.get("state") != "stopped" and probe_for(str(target))()


def _databases(home: Home) -> dict[str, str] | None:
    """A cluster's database URLs (runner.json); None: the SQLite files of the home."""
    databases = (read_state(home.state_file) or {}).get("databases")
    return {str(k): str(v) for k, v in databases.items()} if isinstance(databases, dict) else None


def outbox_lag(home: Home) -> list[dict[str, Any]]:
    """Per service: unpublished events, and the age in seconds of the oldest."""
    now = datetime.now(UTC)
    lags = []
    for service in (s.name for s in SERVICES if s.database):
        url = database_url(home.root, service, _databases(home))
        if url is None:
            continue
        try:
            with snapshot(url) as connection:
                pending, oldest = connection.execute(
                    select(func.count(), func.min(outbox.c.created_at)).where(
                        outbox.c.published_at.is_(None)
                    )
                ).one()
        except Exception:  # not migrated yet, no outbox table, locked: nothing to say
            continue
        lag = (now - _utc(oldest)).total_seconds() if oldest is not None else 0.0
        lags.append({"service": service, "pending": pending, "lag_seconds": round(lag, 3)})
    return lags


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def broker_url(home: Home) -> str | None:
    state = read_state(home.state_file) or {}
    if state.get("broker_url"):
        return str(state["broker_url"])
    for process in state.get("processes") or []:
        if process.get("name") == "nats" and process.get("url"):
            return str(process["url"])
    return None


def dead_letters(home: Home) -> dict[str, Any]:
    """How many events each consumer gave up on, and the newest few."""
    url = broker_url(home)
    if url is None:
        return {"error": "no broker known (is the platform running?)"}
    try:
        letters = asyncio.run(_list_dead_letters(url))
    except Exception as exc:  # the broker is down or restarting: say so, not a 500
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
    by_consumer = Counter(f"{letter.consumer} / {letter.event_type}" for letter in letters)
    return {
        "total": len(letters),
        "by_consumer": dict(by_consumer),
        "latest": [letter.as_json() for letter in letters[-5:]],
    }


async def _list_dead_letters(url: str) -> list[Any]:
    # The broker clients (nats-py, aio-pika, aiohttp under them) load when the page first
    # asks: about 10 MiB that the ops process does not hold while nobody looks.
    from bazaar.runner.deadletters import DeadLetters

    async with asyncio.timeout(BROKER_TIMEOUT):
        async with DeadLetters.connect(url, timeout=BROKER_TIMEOUT) as letters:
            return list(await letters.list_all())


def rates(
    spans: Sequence[Span], window_seconds: float = RATE_WINDOW_SECONDS
) -> list[dict[str, Any]]:
    """Per service, over the window: requests (server spans) and messages handled
    (consumer spans) per second, the share that failed, and their latency."""
    by_service: dict[str, list[Span]] = {}
    for span in spans:
        if span.kind in ("server", "consumer"):
            by_service.setdefault(span.service, []).append(span)
    table = []
    for service, handled in sorted(by_service.items()):
        durations = sorted(s.duration_ms for s in handled)
        table.append(
            {
                "service": service,
                "requests_per_s": round(
                    sum(s.kind == "server" for s in handled) / window_seconds, 2
                ),
                "messages_per_s": round(
                    sum(s.kind == "consumer" for s in handled) / window_seconds, 2
                ),
                "error_pct": round(100 * sum(s.error for s in handled) / len(handled), 1),
                "p50_ms": round(statistics.median(durations), 2),
                "p95_ms": round(durations[min(len(durations) - 1, int(0.95 * len(durations)))], 2),
            }
        )
    return table


def checkouts_per_minute(
    spans: Sequence[Span], window_seconds: float = RATE_WINDOW_SECONDS
) -> float:
    started = sum(
        s.kind == "server"
        and s.service == "order"
        and s.name.startswith("POST")
        and "checkout" in s.name
        for s in spans
    )
    return round(started * 60.0 / window_seconds, 1)


def window_start_ns(window_seconds: float = RATE_WINDOW_SECONDS) -> int:
    return time.time_ns() - int(window_seconds * 1e9)


def order_state(home: Home, order_id: str) -> dict[str, Any] | None:
    """The order's row in the order service's database: where its saga stands."""
    url = database_url(home.root, "order", _databases(home))
    if url is None:
        return None
    try:
        with snapshot(url) as connection:
            row = connection.execute(select(orders).where(orders.c.id == order_id)).one_or_none()
    except Exception:
        return None
    if row is None:
        return None
    return {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in row._mapping.items()
    }


def home_of(path: Path) -> Home:
    return Home(path.resolve())
