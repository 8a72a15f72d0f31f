"""`bazaar` end to end: `up` in a subprocess (stand-in services, real nats and SMTP),
`status`, `stop`, `logs`, and the port-in-use refusal."""

import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bazaar.runner import cli
from bazaar.runner.platform import Platform
from bazaar.runner.ports import free_ports
from bazaar.runner.state import read_state
from bazaar.runner.tests.helpers import eventually, running
from bazaar.runner.tests.standin import standins

UP_WITH_STANDINS = (
    "import sys\n"
    "from bazaar.runner import cli\n"
    "from bazaar.runner.tests.standin import standins\n"
    "cli.TOPOLOGY = standins()\n"
    "raise SystemExit(cli.main(sys.argv[1:]))\n"
)


def bazaar_up(home: Path, port: int, **kwargs) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-c",
        UP_WITH_STANDINS,
        "--home",
        str(home),
        "up",
        "--port",
        str(port),
    ]
    return subprocess.Popen(command, text=True, **kwargs)


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 60) -> str:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, f"no {marker!r} in:\n{seen}"
        line = process.stdout.readline()
        assert line, f"bazaar up ended ({process.poll()}) before {marker!r}:\n{seen}"
        seen += line
    return seen


def test_up_runs_until_stopped_and_leaves_nothing_behind(tmp_path: Path, capsys) -> None:
    home, port = tmp_path / "home", free_ports(1)[0]
    runner = bazaar_up(home, port, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output = read_until(runner, "Ctrl-C to stop")
        assert f"Bazaar is ready: http://localhost:{port}" in output
        assert "admin login: admin@bazaar.local / bazaar-admin-2026" in output
        assert re.search(
            r"^\d\d:\d\d:\d\d gateway ready on 127\.0\.0\.1:\d+ pid \d+$", output, re.M
        )
        state = read_state(home / "runner.json")
        assert state is not None and state["pid"] == runner.pid
        pids = [p["pid"] for p in state["processes"]]

        assert cli.main(["--home", str(home), "status"]) == 0
        table = capsys.readouterr().out
        assert "gateway" in table and "failing" not in table

        assert cli.main(["--home", str(home), "stop"]) == 0
        assert runner.wait(timeout=15) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
    rest = runner.stdout.read() if runner.stdout else ""
    assert "gateway stopped" in rest and "nats stopped" in rest
    assert not any(running(pid) for pid in pids)
    state = read_state(home / "runner.json")
    assert state is not None and state["pid"] is None
    assert all(p["pid"] is None for p in state["processes"])
    assert cli.main(["--home", str(home), "status"]) == 1


def test_up_on_a_terminal_draws_the_table_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_ports(1)[0]
    leader, follower = pty.openpty()
    runner = bazaar_up(home, port, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Ctrl-C to stop" not in screen and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                screen += os.read(leader, 65536)
        text = screen.decode(errors="replace")
        assert "Ctrl-C to stop" in text, text
        for heading in ("process", "port", "pid", "state", "restarts", "uptime"):
            assert heading in text
        assert "ready" in text

        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=15) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
        os.close(leader)
    state = read_state(home / "runner.json")
    assert state is not None and state["pid"] is None


def test_up_refuses_a_port_in_use(tmp_path: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = cli.main(["--home", str(tmp_path / "home"), "up", "--port", str(port)])

    assert code == 2
    assert re.fullmatch(rf"port {port} is in use; set BAZAAR_PORT=\d+\n", capsys.readouterr().err)
    assert not (tmp_path / "home").exists()


def test_up_reads_the_port_from_the_environment(tmp_path: Path, capsys, monkeypatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("BAZAAR_PORT", str(taken.getsockname()[1]))

        assert cli.main(["--home", str(tmp_path), "up"]) == 2


def test_status_and_stop_when_nothing_runs(tmp_path: Path, capsys) -> None:
    assert cli.main(["--home", str(tmp_path), "status"]) == 1
    assert "not running" in capsys.readouterr().out
    assert cli.main(["--home", str(tmp_path), "stop"]) == 0


def test_logs_prints_the_tail(tmp_path: Path, capsys) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "order.log").write_text("".join(f"line {i}\n" for i in range(100)))

    assert cli.main(["--home", str(tmp_path), "logs", "order", "-n", "3"]) == 0
    assert capsys.readouterr().out == "line 97\nline 98\nline 99\n"
    assert cli.main(["--home", str(tmp_path), "logs", "cart"]) == 1
    with pytest.raises(SystemExit):
        cli.main(["--home", str(tmp_path), "logs", "nonsense"])


def test_migrate_and_seed_commands(tmp_path: Path, monkeypatch, capsys) -> None:

    monkeypatch.setattr(cli, "TOPOLOGY", standins())
    assert cli.main(["--home", str(tmp_path), "migrate"]) == 0
    assert cli.main(["--home", str(tmp_path), "seed"]) == 0

    lines = (tmp_path / "standin.log").read_text().splitlines()
    assert lines.count("migrate") == 6  # seed migrates first
    assert sum(line.startswith("seed") for line in lines) == 2
    assert (tmp_path / ".seeded").exists()

    monkeypatch.setenv("STANDIN_FAIL", "migrate")
    assert cli.main(["--home", str(tmp_path), "migrate"]) == 1
    assert "migrations failed" in capsys.readouterr().err


def test_a_new_up_cleans_up_after_a_runner_killed_with_sigkill(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_ports(1)[0]
    runner = bazaar_up(home, port, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        read_until(runner, "Ctrl-C to stop")
        state = read_state(home / "runner.json")
        assert state is not None
        orphans = [p["pid"] for p in state["processes"]]

        runner.kill()  # no chance to stop its children
        runner.wait()
        assert all(running(pid) for pid in orphans)
    finally:
        if runner.poll() is None:
            runner.kill()

    again = Platform(home, port, services=standins())
    try:
        again.start(timeout=60)  # the orphaned gateway held the port: it is freed first
        eventually(lambda: not any(running(pid) for pid in orphans), timeout=15)
    finally:
        again.stop()
