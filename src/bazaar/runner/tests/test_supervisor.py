import os
import signal
import threading
import time
from pathlib import Path

import pytest

from bazaar.runner.supervisor import Backoff, ProcessSpec, Snapshot, State, Supervisor
from bazaar.runner.tests.helpers import eventually, python, running

SLEEPER = python("import time; time.sleep(60)")
FAST = Backoff(initial=0.05, maximum=0.2, reset_after=30)


class Recorder:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self._lock = threading.Lock()

    def __call__(self, snapshot: Snapshot) -> None:
        with self._lock:
            self.snapshots.append(snapshot)

    def delays(self, name: str) -> list[float | None]:
        with self._lock:
            return [
                s.next_delay
                for s in self.snapshots
                if s.name == name and s.state == State.RESTARTING
            ]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def supervisor(recorder: Recorder):
    supervisor = Supervisor(FAST, recorder)
    yield supervisor
    supervisor.stop_all(timeout=15)


def spec(tmp_path: Path, name: str, command: list[str], **kwargs) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        command=command,
        env=dict(os.environ),
        log_path=tmp_path / f"{name}.log",
        **kwargs,
    )


def test_a_process_becomes_ready_when_its_probe_passes(tmp_path, supervisor) -> None:
    gate = tmp_path / "ready"
    process = supervisor.start(spec(tmp_path, "svc", SLEEPER, probe=gate.exists))

    assert process.wait_for({State.STARTING}, timeout=15)
    assert not process.wait_ready(timeout=0.3)
    gate.touch()

    assert process.wait_ready(timeout=15)
    assert running(process.pid)


def test_a_crashing_process_restarts_with_doubling_backoff(tmp_path, supervisor, recorder) -> None:
    crasher = python("import sys; print('boom', flush=True); sys.exit(3)")
    process = supervisor.start(spec(tmp_path, "crasher", crasher))

    eventually(lambda: process.restarts >= 4, timeout=20)

    assert recorder.delays("crasher")[:4] == [0.05, 0.1, 0.2, 0.2]
    restarting = next(s for s in recorder.snapshots if s.state == State.RESTARTING)
    assert restarting.last_exit == 3
    assert (tmp_path / "crasher.log").read_text().count("boom") >= 4


def test_backoff_resets_after_the_process_was_healthy_long_enough(tmp_path, recorder) -> None:
    supervisor = Supervisor(Backoff(initial=0.05, maximum=5, reset_after=0.3), recorder)
    go = tmp_path / "go"
    # Each run exits when told: only once it has been ready for longer than `reset_after`
    # (the test waits that long after seeing it ready, however slow the machine is).
    exits_when_told = python(
        "import pathlib, time\n"
        f"go = pathlib.Path({str(go)!r})\n"
        "while not go.exists(): time.sleep(0.01)\n"
        "go.unlink()\n"
    )
    try:
        process = supervisor.start(spec(tmp_path, "flaky", exits_when_told))
        for run in range(3):
            eventually(lambda r=run: process.restarts == r and process.state == State.READY, 20)
            time.sleep(0.35)  # a lower bound on how long it was ready: never too short
            go.touch()
        eventually(lambda: process.restarts >= 3, timeout=20)
    finally:
        supervisor.stop_all(timeout=15)

    assert recorder.delays("flaky")[:3] == [0.05, 0.05, 0.05]


def test_a_killed_process_is_restarted_with_a_new_pid(tmp_path, supervisor) -> None:
    process = supervisor.start(spec(tmp_path, "svc", SLEEPER))
    assert process.wait_ready(timeout=15)
    first = process.pid

    process.signal(signal.SIGKILL)

    eventually(lambda: process.restarts == 1 and process.state == State.READY, timeout=15)
    assert process.pid != first
    assert not running(first)


def test_restart_replaces_the_process_at_once(tmp_path, supervisor, recorder) -> None:
    process = supervisor.start(spec(tmp_path, "svc", SLEEPER))
    assert process.wait_ready(timeout=15)
    first = process.pid

    process.restart()

    eventually(lambda: process.restarts == 1 and process.state == State.READY, timeout=15)
    assert process.pid != first
    assert recorder.delays("svc") == [0.0]


def test_a_command_that_cannot_start_is_retried_not_fatal(tmp_path, supervisor) -> None:
    process = supervisor.start(spec(tmp_path, "ghost", [str(tmp_path / "no-such-binary")]))

    eventually(lambda: process.restarts >= 2, timeout=15)

    assert process.pid is None
    assert "cannot start" in (tmp_path / "ghost.log").read_text()


def test_stop_all_stops_the_services_before_the_infrastructure(tmp_path) -> None:
    order = tmp_path / "order"
    on_term = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(order)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "pathlib.Path(sys.argv[2]).touch()  # ready: the handler is in place\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor(FAST)
    for name, tier in (("nats", 0), ("smtp", 0), ("auth", 1), ("order", 1), ("gateway", 1)):
        up = tmp_path / f"{name}.up"
        supervisor.start(
            spec(tmp_path, name, [*python(on_term), name, str(up)], tier=tier, probe=up.exists)
        )
    for process in supervisor.processes:
        assert process.wait_ready(timeout=15)

    # A generous timeout: SIGTERM makes each exit at once, the rest is margin for a busy machine.
    supervisor.stop_all(timeout=30, tier_reserve=1)

    stopped = order.read_text().split()
    # The services (signalled gateway first) have all exited before the broker is told.
    assert sorted(stopped[:3]) == ["auth", "gateway", "order"]
    assert sorted(stopped[3:]) == ["nats", "smtp"]
    assert all(p.state == State.STOPPED and p.pid is None for p in supervisor.processes)


def test_stop_all_leaves_no_process_behind(tmp_path) -> None:
    pids = tmp_path / "pids"
    # A stubborn process: ignores SIGTERM and has a child of its own in its group.
    stubborn = python(
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor(FAST)
    supervisor.start(spec(tmp_path, "stubborn", stubborn))
    supervisor.start(spec(tmp_path, "sleeper", SLEEPER))
    eventually(lambda: pids.exists() and len(pids.read_text().split()) == 2, timeout=15)
    parent, child = map(int, pids.read_text().split())
    sleeper = supervisor["sleeper"].pid

    supervisor.stop_all(timeout=2)  # returns (a hang fails on the suite's timeout)

    # The stubborn one ignores SIGTERM: it is gone only because stop_all escalated to
    # SIGKILL at its timeout rather than wait for it.
    eventually(lambda: not any(running(pid) for pid in (parent, child, sleeper)), timeout=15)
    assert all(p.state == State.STOPPED for p in supervisor.processes)


def test_a_process_that_exits_while_stopping_is_not_restarted(tmp_path, supervisor) -> None:
    process = supervisor.start(spec(tmp_path, "svc", SLEEPER))
    assert process.wait_ready(timeout=15)

    process.terminate()

    assert process.join(timeout=15)
    assert process.state == State.STOPPED and process.restarts == 0


def test_names_are_unique(tmp_path, supervisor) -> None:
    supervisor.start(spec(tmp_path, "svc", SLEEPER))

    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start(spec(tmp_path, "svc", SLEEPER))
    with pytest.raises(KeyError, match="no process named 'nope'"):
        supervisor["nope"]
