"""Sampling profiles of running services with py-spy (`--profile`, or BENCH_PROFILE=1):
where each process spends its CPU while the checkout runs at saturation.

py-spy reads the processes from outside (ptrace, `--nonblocking`: they are never paused),
so the services run unchanged. It samples only the thread holding the GIL (`--gil`): the
Python work, which is what can be optimised in Python, and a picture that stays right on
a crowded machine (where "runnable, waiting for a core" would otherwise look busy). C code
that releases the GIL (SQLite's own work in aiosqlite's threads, socket I/O) is not in
it; the CPU time per order that the bench reads from /proc covers everything.

The raw, collapsed stacks are kept beside the results (`profile-<process>.txt`, for
speedscope or flamegraph.pl); the summary names the functions and the libraries that
used the most samples.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RATE = 67  # samples per second: a prime off any timer in the services
TOP = 12
# Where a frame's file lives decides its "library". py-spy names files by module path
# (`aiosqlite/core.py`, `selectors.py`, `bazaar/services/order/app.py`).
SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
STDLIB = re.compile(r"python3\.\d+/([A-Za-z0-9_]+)")
BAZAAR = re.compile(r"bazaar/(platform|services/[a-z]+|runner)/")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextmanager
def recording(pids: dict[str, int], folder: Path) -> Iterator[dict[str, Path]]:
    """Record every named process until the block ends; yields process -> output file."""
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {name: folder / f"profile-{name}.txt" for name in pids}
    recorders = [
        subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--function",
                "--gil",
                "--nonblocking",
                "--output",
                str(outputs[name]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name, pid in pids.items()
    ]
    try:
        yield outputs
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for recorder in recorders:
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()


def summarise(path: Path) -> dict[str, Any]:
    """Percent of samples: by the function running (self), by the library it belongs to,
    and by the deepest Bazaar function on the stack (which of our calls led there)."""
    own: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    deepest: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines() if path.exists() else []:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        own[_short(leaf)] += count
        libraries[_library(leaf)] += count
        ours = [f for f in frames if BAZAAR.search(f)]
        if ours:  # the Bazaar code nearest to where the time went: what to look at first
            deepest[_short(ours[-1])] += count
    if not total:
        return {"samples": 0}

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(TOP)]

    return {
        "samples": total,
        "self_pct": shares(own),
        "library_pct": shares(libraries),
        "bazaar_deepest_pct": shares(deepest),
    }


def _short(frame: str) -> str:
    """`checkout (bazaar/services/order/handlers.py:30)` -> `checkout (order/handlers.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if where else name


def _library(frame: str) -> str:
    """The package a frame's code belongs to: `sqlalchemy`, `asyncio`, `services/order`..."""
    where = frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    for pattern in (BAZAAR, SITE, STDLIB):  # full paths (py-spy --full-filenames) too
        found = pattern.search(where)
        if found:
            return found.group(1)
    if where.startswith("<frozen "):  # <frozen importlib._bootstrap>
        return where.removeprefix("<frozen ").split(".")[0].rstrip(">")
    return where.split("/")[0].removesuffix(".py") or "other"
