"""Sampling profiles of running services with py-spy (`--profile`, or BENCH_PROFILE=1):
where each process spends its CPU while the checkout runs at saturation.

py-spy reads the processes from outside (ptrace, `--nonblocking`: they are never paused),
so the services run unchanged. The raw, collapsed stacks are kept beside the results
(`profile-<process>.txt`, for speedscope or flamegraph.pl); the summary names the
functions and the libraries that used the most samples.
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
# Where a frame's file lives decides its "library": site-packages/<lib>/..., the standard
# library, or the service code itself.
SITE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
STDLIB = re.compile(r"python3\.\d+/([A-Za-z0-9_]+)")
BAZAAR = re.compile(r"bazaar/(platform|services/[a-z]+)/")


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
    """Top functions by own samples, top libraries by own samples, and the service's own
    functions by samples spent in them or below them."""
    own: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
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
        for frame in {f for f in frames if BAZAAR.search(f)}:
            inclusive[_short(frame)] += count
    if not total:
        return {"samples": 0}

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(TOP)]

    return {
        "samples": total,
        "self_pct": shares(own),
        "library_pct": shares(libraries),
        "bazaar_inclusive_pct": shares(inclusive),
    }


def _short(frame: str) -> str:
    """`checkout (bazaar/services/order/handlers.py:30)` -> `checkout (order/handlers.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if where else name


def _library(frame: str) -> str:
    for pattern in (BAZAAR, SITE, STDLIB):
        found = pattern.search(frame)
        if found:
            return found.group(1)
    return "other"
