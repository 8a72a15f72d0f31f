"""`bazaar trace ORDER_ID`: an order's trace drawn in the terminal, as the ops page draws
it: its saga, then each trace as a waterfall (a tree of spans, a bar each on the trace's
time line). It reads the trace store of the home directly, so it works whether or not the
platform still runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bazaar.runner.home import Home
from bazaar.runner.ops import overview
from bazaar.runner.ops.store import TraceStore
from bazaar.runner.ops.waterfall import Waterfall, saga_steps, waterfalls

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BAR_WIDTH = 40
# One colour per service, so that a glance tells where the time went.
COLOURS = {
    "gateway": "bright_blue",
    "auth": "magenta",
    "catalog": "green",
    "cart": "yellow",
    "inventory": "cyan",
    "order": "bright_red",
    "payment": "bright_magenta",
    "notification": "bright_green",
}


def add_command(commands: Any) -> None:
    """Add `trace` to the `bazaar` parser's subcommands."""
    trace_ = commands.add_parser("trace", help="draw an order's trace (from the local store)")
    trace_.add_argument("order_id", metavar="ORDER_ID")
    trace_.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data folder")
    trace_.add_argument("--json", action="store_true", help="print what the ops page gets")
    trace_.set_defaults(run=trace)


def trace(args: argparse.Namespace, home: Home) -> int:
    path = home.root / "traces.db"
    try:
        store = TraceStore.reader(path)
    except FileNotFoundError:
        print(
            f"no trace store at {path}: `bazaar up` keeps one while it runs with tracing on",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        spans = store.spans_of_order(args.order_id)
    finally:
        store.close()
    state = overview.order_state(home, args.order_id)
    if not spans:
        print(f"no spans of order {args.order_id} in {path}")
        return EXIT_FAILED
    drawn = waterfalls(spans)
    if args.json:
        print(json.dumps({"order": state, "traces": [w.as_json() for w in drawn]}, default=str))
        return EXIT_OK
    console = Console()
    console.print(headline(args.order_id, state, drawn))
    steps = saga_table(saga_steps(spans))
    if steps.row_count:
        console.print(steps)
    for waterfall in drawn:
        console.print(waterfall_table(waterfall))
    return EXIT_OK


def headline(order_id: str, state: dict[str, Any] | None, drawn: list[Waterfall]) -> Text:
    services = list(dict.fromkeys(s for w in drawn for s in w.services))
    spans = sum(len(w.rows) for w in drawn)
    text = Text(f"order {order_id}", style="bold")
    if state:
        reason = f" ({state['reason']})" if state.get("reason") else ""
        text.append(f"  {state.get('status')}{reason}", style="bold")
    text.append(f"\n{len(drawn)} trace(s), {spans} spans, {len(services)} services: ")
    for index, service in enumerate(services):
        text.append(service, style=COLOURS.get(service, "white"))
        text.append(", " if index < len(services) - 1 else "")
    return text


def saga_table(steps: list[dict[str, Any]]) -> Table:
    table = Table(title="saga steps", title_justify="left")
    for column in ("step", "outcome", "ms", "trace"):
        table.add_column(column)
    for step in steps:
        table.add_row(
            step["step"],
            Text(step["outcome"], style="red" if step["error"] else ""),
            f"{step['duration_ms']:.1f}",
            step["trace_id"][:8],
        )
    return table


def waterfall_table(waterfall: Waterfall) -> Table:
    table = Table(
        title=f"trace {waterfall.trace_id}  {waterfall.duration_ms:.1f} ms",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("service", no_wrap=True)
    table.add_column("span", overflow="ellipsis", max_width=60, no_wrap=True)
    table.add_column("time line", no_wrap=True)
    table.add_column("ms", justify="right")
    total = waterfall.duration_ms or 1.0
    for row in waterfall.rows:
        colour = COLOURS.get(row.span.service, "white")
        name = Text("  " * row.depth + row.span.name, style="red" if row.span.error else "")
        table.add_row(
            Text(row.span.service, style=colour),
            name,
            bar(row.offset_ms / total, row.span.duration_ms / total, colour),
            f"{row.span.duration_ms:.1f}",
        )
    return table


def bar(start: float, length: float, colour: str, width: int = BAR_WIDTH) -> Text:
    """The span's place on the trace's time line: `start` and `length` as shares of it."""
    begin = min(width - 1, int(start * width))
    cells = max(1, round(length * width))
    cells = min(cells, width - begin)
    text = Text(" " * begin)
    text.append("█" * cells, style=colour)
    text.append(" " * (width - begin - cells))
    return text
