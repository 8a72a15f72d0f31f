"""The local trace store: the spans `bazaar up`'s processes export, in one SQLite file
(`$BAZAAR_HOME/traces.db`), at most `max_spans` of them: past that the oldest go first.

One writer (the ops server), any number of readers (the server's own queries, `bazaar
trace` in another process): WAL lets them all run at once. Spans are found by trace id and
by the order they belong to: any span with a `bazaar.order_id` attribute (the saga's, the
checkout's) ties its whole trace, and the traces linked to it, to that order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bazaar.runner.ops.otlp import Span

DEFAULT_MAX_SPANS = 50_000  # about 800 checkouts; some 30 MB on disk
ORDER_ATTRIBUTE = "bazaar.order_id"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    error INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    order_id TEXT,
    attributes TEXT NOT NULL,
    links TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_order ON spans (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
"""
_COLUMNS = (
    "trace_id, span_id, parent_id, service, name, kind, start_ns, end_ns, error, "
    "status_message, order_id, attributes, links"
)


@dataclass(frozen=True)
class OrderSeen:
    """An order the store has spans of: when its first trace began, and how wide it is."""

    order_id: str
    trace_id: str
    started_ns: int
    spans: int
    services: int
    errors: int


class TraceStore:
    def __init__(self, path: Path, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        if max_spans < 1:
            raise ValueError("max_spans must be at least 1")
        self.path = path
        self.max_spans = max_spans
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection, shared by the server's threads
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost last export is no loss
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    @classmethod
    def reader(cls, path: Path) -> TraceStore:
        """The store at `path` for reading only (another process writes it)."""
        if not path.exists():
            raise FileNotFoundError(f"no trace store at {path}")
        return cls(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ----------------------------------------------------------------------

    def add(self, spans: Sequence[Span]) -> None:
        """Store `spans`, then forget the oldest beyond `max_spans`."""
        if not spans:
            return
        rows = [_row(span) for span in spans]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    f"INSERT INTO spans ({_COLUMNS}) VALUES ({', '.join('?' * 13)})", rows
                )
                # By sequence, on the primary key: no count of the table on every export.
                self._db.execute(
                    "DELETE FROM spans WHERE seq <= (SELECT max(seq) FROM spans) - ?",
                    (self.max_spans,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- reading ----------------------------------------------------------------------

    def count(self) -> int:
        return int(self._one("SELECT count(*) FROM spans")[0])

    def trace(self, trace_id: str) -> list[Span]:
        return self._spans("WHERE trace_id = ? ORDER BY start_ns", (trace_id,))

    def traces_of_order(self, order_id: str) -> list[str]:
        """The traces with a span of the order, and those their spans link to (a saga
        resumed after a crash starts a trace linked to the checkout's), oldest first."""
        found = [
            str(row[0])
            for row in self._all(
                "SELECT trace_id FROM spans WHERE order_id = ? "
                "GROUP BY trace_id ORDER BY min(start_ns)",
                (order_id,),
            )
        ]
        linked = {
            trace_id
            for span in self._spans_of(found)
            for trace_id, _ in span.links
            if trace_id not in found
        }
        known = [t for t in linked if self._one("SELECT 1 FROM spans WHERE trace_id = ?", (t,))]
        return sorted([*found, *known], key=self._trace_start)

    def spans_of_order(self, order_id: str) -> list[Span]:
        return self._spans_of(self.traces_of_order(order_id))

    def recent_orders(self, limit: int = 20) -> list[OrderSeen]:
        """The orders whose traces began last, newest first."""
        rows = self._all(
            "SELECT order_id, min(trace_id), min(start_ns) FROM spans "
            "WHERE order_id IS NOT NULL GROUP BY order_id ORDER BY min(start_ns) DESC LIMIT ?",
            (limit,),
        )
        seen = []
        for order_id, trace_id, started in rows:
            spans = self.spans_of_order(str(order_id))
            seen.append(
                OrderSeen(
                    order_id=str(order_id),
                    trace_id=str(trace_id),
                    started_ns=int(started),
                    spans=len(spans),
                    services=len({s.service for s in spans}),
                    errors=sum(s.error for s in spans),
                )
            )
        return seen

    def since(self, start_ns: int) -> list[Span]:
        """Every span that began at or after `start_ns` (the rates' window)."""
        return self._spans("WHERE start_ns >= ?", (start_ns,))

    def _spans_of(self, trace_ids: Iterable[str]) -> list[Span]:
        ids = list(trace_ids)
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self._spans(f"WHERE trace_id IN ({marks}) ORDER BY start_ns", ids)

    def _trace_start(self, trace_id: str) -> int:
        return int(self._one("SELECT min(start_ns) FROM spans WHERE trace_id = ?", (trace_id,))[0])

    def _spans(self, where: str, parameters: Sequence[Any]) -> list[Span]:
        return [
            _span(row) for row in self._all(f"SELECT {_COLUMNS} FROM spans {where}", parameters)
        ]

    def _all(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, parameters).fetchall())

    def _one(self, sql: str, parameters: Sequence[Any] = ()) -> tuple[Any, ...]:
        rows = self._all(sql, parameters)
        return rows[0] if rows else (None,)


def _row(span: Span) -> tuple[Any, ...]:
    order_id = span.attributes.get(ORDER_ATTRIBUTE)
    return (
        span.trace_id,
        span.span_id,
        span.parent_id,
        span.service,
        span.name,
        span.kind,
        span.start_ns,
        span.end_ns,
        int(span.error),
        span.status_message,
        str(order_id)[:100] if order_id else None,
        json.dumps(span.attributes, default=str),
        json.dumps(span.links),
    )


def _span(row: Sequence[Any]) -> Span:
    return Span(
        trace_id=row[0],
        span_id=row[1],
        parent_id=row[2],
        service=row[3],
        name=row[4],
        kind=row[5],
        start_ns=row[6],
        end_ns=row[7],
        error=bool(row[8]),
        status_message=row[9],
        attributes=json.loads(row[11]),
        links=tuple((str(t), str(s)) for t, s in json.loads(row[12])),
    )
