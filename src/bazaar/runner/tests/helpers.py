"""Small helpers the runner's tests share."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from bazaar.runner.state import pid_alive


def running(pid: int | None) -> bool:
    """True if `pid` is a live process (a zombie awaiting its reaper counts as gone)."""
    return pid_alive(pid)


def eventually(check: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(interval)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]
