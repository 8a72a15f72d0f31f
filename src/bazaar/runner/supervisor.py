"""Supervising OS processes: start each in its own process group, probe it until ready,
restart it with exponential backoff when it exits unexpectedly, stop them all in reverse
order leaving nothing behind.

Threads, not asyncio: every process has one monitor thread that owns its `Popen`, so the
blocking calls (wait, probe) stay simple and the API is usable from plain sync code (the
CLI, pytest fixtures).
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bazaar.platform.backoff import backoff
from bazaar.runner.probes import Probe, always_ready


class State(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    # Was ready, and has stopped answering its readiness probe (hung, stopped, overloaded).
    NOT_READY = "not ready"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Backoff:
    """Delay before restart: `initial`, doubling up to `maximum`; back to `initial` once
    the process had been ready for `reset_after` seconds before it died."""

    initial: float = 0.5
    maximum: float = 10.0
    reset_after: float = 30.0

    def delay(self, failures: int) -> float:
        """The wait before restarting a process that died `failures` times in a row."""
        return backoff(failures, initial=self.initial, maximum=self.maximum)


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    probe: Probe = always_ready
    ports: Mapping[str, int] = field(default_factory=dict)
    url: str = ""
    # What `bazaar status` probes later: http://... or tcp://host:port.
    health: str = ""
    # Processes of a higher tier are stopped first (services before the broker).
    tier: int = 1
    # What asks it to stop (PostgreSQL's SIGTERM waits for every client to leave).
    stop_signal: int = signal.SIGTERM


@dataclass(frozen=True)
class Snapshot:
    name: str
    state: State
    pid: int | None
    restarts: int
    ports: Mapping[str, int]
    url: str
    health: str
    uptime: float | None
    last_exit: int | None
    next_delay: float | None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state.value,
            "pid": self.pid,
            "restarts": self.restarts,
            "ports": dict(self.ports),
            "url": self.url,
            "health": self.health,
            "last_exit": self.last_exit,
        }


Listener = Callable[[Snapshot], None]
POLL_SECONDS = 0.1
# Once ready, a process is probed again this often; this many failures in a row make it
# "not ready" (a hung or SIGSTOPped process), one success makes it ready again.
RECHECK_SECONDS = 1.0
RECHECK_FAILURES = 2


class ManagedProcess:
    """One supervised process. `start()` launches its monitor thread; the thread spawns,
    probes, and respawns until `terminate()`."""

    def __init__(self, spec: ProcessSpec, backoff: Backoff, listener: Listener) -> None:
        self.spec = spec
        self._backoff = backoff
        self._listener = listener
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._wake = threading.Event()  # cuts a backoff wait short (manual restart)
        self._restart_now = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._state = State.STOPPED
        self._restarts = 0
        self._started_at: float | None = None
        self._last_exit: int | None = None
        self._next_delay: float | None = None

    # -- observing -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._popen.pid if self._popen and self._popen.returncode is None else None

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    @property
    def restarts(self) -> int:
        with self._lock:
            return self._restarts

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Snapshot:
        alive = self._popen is not None and self._popen.returncode is None
        return Snapshot(
            name=self.spec.name,
            state=self._state,
            pid=self._popen.pid if alive and self._popen else None,
            restarts=self._restarts,
            ports=self.spec.ports,
            url=self.spec.url,
            health=self.spec.health,
            uptime=time.monotonic() - self._started_at if alive and self._started_at else None,
            last_exit=self._last_exit,
            next_delay=self._next_delay,
        )

    def wait_for(self, states: set[State], timeout: float) -> bool:
        """Block until the process is in one of `states`; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._state not in states:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_ready(self, timeout: float) -> bool:
        return self.wait_for({State.READY}, timeout)

    # -- controlling -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._supervise, name=f"supervise-{self.name}", daemon=True
        )
        self._thread.start()

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group (a crash to supervise, if it kills)."""
        with self._lock:
            popen = self._popen
        if popen and popen.returncode is None:
            _signal_group(popen.pid, sig)

    def restart(self) -> None:
        """Stop the current process (SIGTERM) and start a new one at once, no backoff."""
        with self._lock:
            self._restart_now = True
            popen = self._popen
        self._wake.set()
        if popen and popen.returncode is None:
            _signal_group(popen.pid, self.spec.stop_signal)

    def terminate(self) -> None:
        """Ask the process to stop (its stop signal) and stop supervising it."""
        with self._lock:
            self._stopping.set()
            popen = self._popen
        self._wake.set()
        if popen and popen.returncode is None:
            _signal_group(popen.pid, self.spec.stop_signal)

    def kill(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.signal(signal.SIGKILL)

    def join(self, timeout: float) -> bool:
        """Wait for the monitor thread (and so the process) to end; True if it did."""
        if self._thread:
            self._thread.join(max(timeout, 0))
            return not self._thread.is_alive()
        return True

    # -- the monitor thread ----------------------------------------------------------

    def _supervise(self) -> None:
        failures = 0  # deaths since the process was last healthy for `reset_after`
        while not self._stopping.is_set():
            self._wake.clear()
            popen = self._spawn()
            ready_at = self._watch(popen) if popen else None
            if popen:
                # Whatever the leader left in its group goes with it.
                _signal_group(popen.pid, signal.SIGKILL)
            if self._stopping.is_set():
                break
            with self._lock:
                manual = self._restart_now
            if ready_at is not None and time.monotonic() - ready_at >= self._backoff.reset_after:
                failures = 0
            wait = 0.0 if manual else self._backoff.delay(failures)
            self._set(
                State.RESTARTING, last_exit=popen.returncode if popen else None, next_delay=wait
            )
            if not manual:
                self._wake.wait(wait)  # restart() or terminate() cut it short
                if self._stopping.is_set():
                    break
                failures += 1
            with self._lock:
                self._restart_now = False
                self._restarts += 1
        self._set(State.STOPPED, next_delay=None)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        spec = self.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n--- {stamp} starting: {' '.join(spec.command)}\n".encode())
            log.flush()
            with self._lock:
                if self._stopping.is_set():
                    return None
                try:
                    self._popen = subprocess.Popen(
                        list(spec.command),
                        env=dict(spec.env),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group: we signal the group
                    )
                    self._started_at = time.monotonic()
                except OSError as exc:
                    log.write(f"--- cannot start: {exc}\n".encode())
                    self._popen = None
        self._set(State.STARTING)
        return self._popen

    def _watch(self, popen: subprocess.Popen[bytes]) -> float | None:
        """Probe until ready, then keep probing (see RECHECK_SECONDS) until the exit.
        Returns when it first became ready."""
        ready_at: float | None = None
        next_check, failures = 0.0, 0
        while True:
            try:
                popen.wait(timeout=POLL_SECONDS)
                return ready_at
            except subprocess.TimeoutExpired:
                pass
            if self._stopping.is_set() or time.monotonic() < next_check:
                continue
            answered = self.spec.probe()
            if popen.poll() is not None:
                continue  # it exited meanwhile: the wait above says so
            if ready_at is None:
                if answered:
                    ready_at, next_check = time.monotonic(), time.monotonic() + RECHECK_SECONDS
                    self._set(State.READY)
                continue
            next_check = time.monotonic() + RECHECK_SECONDS
            failures = 0 if answered else failures + 1
            if answered and self.state is State.NOT_READY:
                self._set(State.READY)
            elif failures >= RECHECK_FAILURES and self.state is State.READY:
                self._set(State.NOT_READY)

    def _set(self, state: State, **fields: object) -> None:
        with self._lock:
            for name, value in fields.items():
                setattr(self, f"_{name}", value)
            self._state = state
            self._changed.notify_all()
            snapshot = self._snapshot()
        # Outside our lock: a listener may look at other processes (and their locks).
        with contextlib.suppress(Exception):  # a broken view never takes the supervisor down
            self._listener(snapshot)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Supervisor:
    """The processes of one platform, in start order."""

    def __init__(self, backoff: Backoff | None = None, listener: Listener | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._listener = listener or (lambda _: None)
        self._processes: dict[str, ManagedProcess] = {}

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        if spec.name in self._processes:
            raise ValueError(f"a process named {spec.name!r} is already supervised")
        process = ManagedProcess(spec, self.backoff, self._listener)
        self._processes[spec.name] = process
        process.start()
        return process

    def __getitem__(self, name: str) -> ManagedProcess:
        try:
            return self._processes[name]
        except KeyError:
            known = ", ".join(self._processes) or "none"
            raise KeyError(f"no process named {name!r} (running: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._processes

    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes.values())

    def snapshots(self) -> list[Snapshot]:
        return [p.snapshot() for p in self._processes.values()]

    def stop_all(self, timeout: float = 10.0, tier_reserve: float = 2.0) -> None:
        """SIGTERM each process group, highest tier first and in reverse start order within
        a tier; wait; SIGKILL whatever is left so that nothing outlives `timeout`."""
        started = time.monotonic()
        kill_at = started + max(timeout - 1.0, 0.5)  # keep a second for SIGKILL and reaping
        tiers = sorted({p.spec.tier for p in self._processes.values()}, reverse=True)
        for index, tier in enumerate(tiers):
            members = [p for p in reversed(self._processes.values()) if p.spec.tier == tier]
            for process in members:
                process.terminate()
            # Later tiers keep a reserve, so the broker outlives the services' shutdown.
            tier_deadline = kill_at - tier_reserve * (len(tiers) - 1 - index)
            for process in members:
                process.join(tier_deadline - time.monotonic())
        for process in self._processes.values():
            if not process.join(0):
                process.kill()
        for process in self._processes.values():
            process.join(max(started + timeout - time.monotonic(), 0.2))
