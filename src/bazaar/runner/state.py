"""`runner.json`: what the running runner started, for `bazaar status`, `bazaar stop` and
anyone who wants the internal ports. Written atomically on every change."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any


def write_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(temporary, path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """An exited process its parent has not reaped yet: as good as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): trust kill(0)
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def running_runner(path: Path) -> int | None:
    """The pid of the runner that owns this home, if it is alive."""
    state = read_state(path)
    pid = state.get("pid") if state else None
    return pid if isinstance(pid, int) and pid_alive(pid) else None


def reclaim(path: Path, wait: float = 3.0) -> int | None:
    """Make the home at `path` (its runner.json) ours: the pid of a live runner that owns
    it, or None once whatever a dead runner (SIGKILLed: it could not stop its children)
    left running is gone."""
    owner = running_runner(path)
    if owner == os.getpid():  # this process's own platform: nothing is orphaned
        return None
    if owner:
        return owner
    state = read_state(path)
    orphans = kill_orphans(state) if state else []
    deadline = time.monotonic() + wait
    while any(pid_alive(pid) for pid in orphans) and time.monotonic() < deadline:
        time.sleep(0.05)
    return None


def kill_orphans(state: dict[str, Any]) -> list[int]:
    """SIGKILL the process groups a dead runner left behind. Only a pid whose command line
    is still the one recorded is touched, so a reused pid is never hit."""
    killed = []
    for process in state.get("processes") or []:
        pid, command = process.get("pid"), process.get("command")
        if not (pid_alive(pid) and isinstance(command, list)) or _command_line(pid) != command:
            continue
        try:
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def _command_line(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone, or no /proc (macOS): leave it alone
        return None
    return raw.rstrip(b"\0").decode("utf-8", "replace").split("\0")
