"""How `bazaar up` shows what runs: a live table on a terminal, plain log lines (state
changes only) otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bazaar.runner.supervisor import Snapshot, State

STATE_STYLES = {
    State.STARTING: "yellow",
    State.READY: "green",
    State.NOT_READY: "magenta",
    State.RESTARTING: "red",
    State.STOPPED: "dim",
}


def format_ports(ports: Mapping[str, int]) -> str:
    if not ports:
        return "-"
    (_, main), *others = ports.items()
    return " ".join([str(main), *(f"{role} {port}" for role, port in others)])


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe(snapshot: Snapshot) -> str:
    """One plain line for a state change, e.g. "order ready on 127.0.0.1:53211 pid 1234"."""
    where = snapshot.url.split("://")[-1] or "-"
    if snapshot.state == State.RESTARTING:
        return (
            f"{snapshot.name} exited (code {snapshot.last_exit}); restarting in "
            f"{snapshot.next_delay or 0:.1f} s (restart {snapshot.restarts + 1})"
        )
    if snapshot.state == State.STOPPED:
        return f"{snapshot.name} stopped"
    return f"{snapshot.name} {snapshot.state.value} on {where} pid {snapshot.pid}"


def process_table(snapshots: list[Snapshot], title: str = "bazaar") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("process", "port", "pid", "state", "restarts", "uptime"):
        table.add_column(column, justify="right" if column in ("pid", "restarts") else "left")
    for s in snapshots:
        style = STATE_STYLES.get(s.state, "")
        table.add_row(
            s.name,
            format_ports(s.ports),
            str(s.pid or "-"),
            f"[{style}]{s.state.value}[/]",
            str(s.restarts),
            format_uptime(s.uptime),
        )
    return table


class PlainView:
    """Timestamped lines, one per state change: for logs, CI and pipes."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._lock = threading.Lock()
        self._last: dict[str, tuple[State, int]] = {}

    def __enter__(self) -> PlainView:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    def say(self, message: str) -> None:
        with self._lock:
            for line in message.splitlines() or [""]:
                self._out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            self._out.flush()

    def changed(self, snapshot: Snapshot) -> None:
        key = (snapshot.state, snapshot.restarts)
        if self._last.get(snapshot.name) == key:
            return
        self._last[snapshot.name] = key
        self.say(describe(snapshot))


class LiveView:
    """A rich Live table refreshed twice a second; messages print above it."""

    def __init__(
        self, snapshots: Callable[[], list[Snapshot]], console: Console | None = None
    ) -> None:
        self._snapshots = snapshots
        self._console = console or Console()
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        # Built here, not in __init__: Live renders once at construction.
        self._live = Live(
            get_renderable=lambda: process_table(self._snapshots()),
            console=self._console,
            refresh_per_second=2,
        )
        self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live:
            self._live.stop()

    def say(self, message: str) -> None:
        self._console.print(message, highlight=False)

    def changed(self, snapshot: Snapshot) -> None:
        pass  # the table redraws itself
