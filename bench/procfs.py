"""What Linux tells about a process: resident memory and CPU time (from /proc)."""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_kib(pid: int) -> int | None:
    """VmRSS of the process, in KiB; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pids: dict[str, int]) -> dict[str, float | None]:
    """RSS in MiB per process, and their total."""
    sizes = {name: rss_kib(pid) for name, pid in pids.items()}
    result: dict[str, float | None] = {
        name: None if kib is None else round(kib / 1024, 1) for name, kib in sizes.items()
    }
    result["total"] = round(sum(k for k in sizes.values() if k) / 1024, 1)
    return result


def cpu(pids: dict[str, int]) -> dict[str, float]:
    return {
        name: seconds for name, pid in pids.items() if (seconds := cpu_seconds(pid)) is not None
    }


def cpu_share(before: dict[str, float], after: dict[str, float], since: float) -> dict[str, float]:
    """Percent of one core each process used between two `cpu` readings (`since`: the
    monotonic time of the first), and their total."""
    seconds = max(time.monotonic() - since, 1e-9)
    shares = {
        name: round(100 * (after[name] - before[name]) / seconds, 1)
        for name in after
        if name in before
    }
    shares["total"] = round(sum(shares.values()), 1)
    return shares
