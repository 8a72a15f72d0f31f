"""A trace as a waterfall: its spans in tree order (each after its parent, siblings by
start), each with its depth and its offset from the trace's start. The ops page draws it
as bars, `bazaar trace` as a tree in the terminal; both get it from here (the page as
JSON, through the ops server), so they always show the same thing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bazaar.runner.ops.otlp import Span

# Attributes worth showing beside a span's name, first found first.
DETAIL_ATTRIBUTES = (
    "bazaar.saga.outcome",
    "http.route",
    "url.path",
    "http.target",
    "http.url",
    "url.full",
    "http.response.status_code",
    "http.status_code",
    "rpc.method",
    "rpc.grpc.status_code",
    "messaging.destination.name",
    "db.statement",
    "db.query.text",
)
SAGA_STEP = "bazaar.saga.step"


@dataclass(frozen=True)
class Row:
    span: Span
    depth: int
    offset_ms: float

    def as_json(self, trace_ms: float) -> dict[str, Any]:
        scale = 100.0 / trace_ms if trace_ms > 0 else 0.0
        return {
            "span_id": self.span.span_id,
            "parent_id": self.span.parent_id,
            "service": self.span.service,
            "name": self.span.name,
            "kind": self.span.kind,
            "depth": self.depth,
            "offset_ms": round(self.offset_ms, 3),
            "duration_ms": round(self.span.duration_ms, 3),
            # Where its bar sits on the trace's time line, in percent.
            "left_pct": round(self.offset_ms * scale, 3),
            "width_pct": round(max(self.span.duration_ms * scale, 0.2), 3),
            "error": self.span.error,
            "status_message": self.span.status_message,
            "detail": detail(self.span),
        }


@dataclass(frozen=True)
class Waterfall:
    trace_id: str
    start_ns: int
    end_ns: int
    rows: tuple[Row, ...]

    @property
    def duration_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def services(self) -> list[str]:
        """The services with spans in the trace, in the order they first appear."""
        return list(dict.fromkeys(row.span.service for row in self.rows))

    def as_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "start_ns": self.start_ns,
            "duration_ms": round(self.duration_ms, 3),
            "services": self.services,
            "spans": len(self.rows),
            "errors": sum(row.span.error for row in self.rows),
            "rows": [row.as_json(self.duration_ms) for row in self.rows],
        }


def waterfalls(spans: Iterable[Span]) -> list[Waterfall]:
    """One waterfall per trace in `spans`, the earliest trace first."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    drawn = [_waterfall(trace_id, members) for trace_id, members in by_trace.items()]
    return sorted(drawn, key=lambda w: w.start_ns)


def _waterfall(trace_id: str, spans: Sequence[Span]) -> Waterfall:
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = defaultdict(list)
    roots = []
    for span in spans:
        # A span whose parent is not here (not exported yet, or trimmed) is drawn as a root.
        if span.parent_id and span.parent_id in ids:
            children[span.parent_id].append(span)
        else:
            roots.append(span)
    rows: list[Row] = []
    stack = [(span, 0) for span in sorted(roots, key=_start, reverse=True)]
    while stack:
        span, depth = stack.pop()
        rows.append(Row(span, depth, (span.start_ns - start) / 1e6))
        below = sorted(children.get(span.span_id, ()), key=_start, reverse=True)
        stack.extend((child, depth + 1) for child in below)
    return Waterfall(trace_id, start, end, tuple(rows))


def _start(span: Span) -> tuple[int, str]:
    return span.start_ns, span.span_id


def detail(span: Span) -> str:
    """One attribute that says most about the span (its route, statement, subject...)."""
    for name in DETAIL_ATTRIBUTES:
        value = span.attributes.get(name)
        if value not in (None, ""):
            return f"{name}={value}"[:160]
    return ""


def saga_steps(spans: Iterable[Span]) -> list[dict[str, Any]]:
    """The saga's steps, in the order they ran: each step's span says which and how."""
    steps = sorted((s for s in spans if SAGA_STEP in s.attributes), key=_start)
    return [
        {
            "step": str(s.attributes[SAGA_STEP]),
            "outcome": str(s.attributes.get("bazaar.saga.outcome", "")),
            "attempt": s.attributes.get("bazaar.saga.attempt"),
            "started_ns": s.start_ns,
            "duration_ms": round(s.duration_ms, 3),
            "trace_id": s.trace_id,
            "error": s.error,
        }
        for s in steps
    ]
