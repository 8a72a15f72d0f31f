import io

from rich.console import Console

from bazaar.runner.supervisor import Snapshot, State
from bazaar.runner.views import PlainView, describe, format_ports, format_uptime, process_table


def snapshot(state: State, **changes) -> Snapshot:
    fields = dict(
        name="order",
        state=state,
        pid=1234,
        restarts=0,
        ports={"http": 53211},
        url="http://127.0.0.1:53211",
        health="",
        uptime=5.0,
        last_exit=None,
        next_delay=None,
    )
    return Snapshot(**{**fields, **changes})


def test_plain_lines_say_what_changed() -> None:
    assert describe(snapshot(State.READY)) == "order ready on 127.0.0.1:53211 pid 1234"
    assert describe(
        snapshot(State.RESTARTING, pid=None, last_exit=-9, next_delay=0.5, restarts=2)
    ) == ("order exited (code -9); restarting in 0.5 s (restart 3)")
    assert describe(snapshot(State.STOPPED, pid=None)) == "order stopped"


def test_the_plain_view_prints_state_changes_only() -> None:
    out = io.StringIO()
    view = PlainView(out)

    view.changed(snapshot(State.STARTING))
    view.changed(snapshot(State.STARTING))
    view.changed(snapshot(State.READY))

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].endswith(" order ready on 127.0.0.1:53211 pid 1234")
    assert lines[1][2] == ":" and lines[1][5] == ":"  # HH:MM:SS first


def test_the_table_shows_every_column() -> None:
    console = Console(file=io.StringIO(), width=120)
    console.print(process_table([snapshot(State.READY, ports={"grpc": 1, "ops": 2}, restarts=3)]))
    text = console.file.getvalue()

    for expected in ("process", "uptime", "order", "1 ops 2", "1234", "ready", "3", "0:05"):
        assert expected in text


def test_formats() -> None:
    assert format_ports({}) == "-"
    assert format_ports({"client": 4222, "monitor": 8222}) == "4222 monitor 8222"
    assert format_uptime(None) == "-"
    assert format_uptime(3725) == "1:02:05"
