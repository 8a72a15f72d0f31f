"""The whole runner against stand-in services, with the real nats-server and SMTP sink."""

import json
import os
import signal
import smtplib
import urllib.request
from pathlib import Path

import pytest

from bazaar.runner import cluster
from bazaar.runner.platform import AlreadyRunning, Platform, StartupError
from bazaar.runner.ports import PortInUse, free_ports
from bazaar.runner.state import read_state
from bazaar.runner.supervisor import Backoff, State
from bazaar.runner.tests.helpers import eventually, running
from bazaar.runner.tests.standin import standins

FAST = Backoff(initial=0.05, maximum=0.5, reset_after=30)


def fetch_json(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return json.loads(response.read())


def make(home: Path, port: int | None = None, **kwargs) -> Platform:
    return Platform(home, port or free_ports(1)[0], services=standins(), backoff=FAST, **kwargs)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    # One platform for the tests that leave it as they found it.
    platform = make(tmp_path_factory.mktemp("shared") / "home")
    platform.start(timeout=60)
    yield platform
    platform.stop()


def test_everything_runs_ready_and_wired(platform: Platform) -> None:
    assert [s.name for s in platform.snapshots()] == [
        "nats",
        "smtp",
        "ops",
        "auth",
        "inventory",
        "notification",
        "gateway",
    ]
    assert all(s.state == State.READY and running(s.pid) for s in platform.snapshots())

    env = fetch_json(f"{platform.public_url}/env")
    assert env["BAZAAR_PORT"] == str(platform.public_port)
    assert env["BAZAAR_HOME"] == str(platform.home.root)
    assert env["BAZAAR_BROKER_URL"] == platform.broker_url
    assert env["BAZAAR_AUTH_URL"] == platform.url("auth")
    assert env["BAZAAR_JWKS_URL"] == platform.url("auth") + "/.well-known/jwks.json"
    assert env["BAZAAR_INVENTORY_ADDR"] == platform.url("inventory")
    assert env["BAZAAR_MAILDIR"] == str(platform.home.mail)
    assert env["BAZAAR_LOG_FORMAT"] == "json"
    # Traces go to the ops server's local store (nothing else was configured).
    ops = platform.urls["ops"]
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == f"{ops}/v1/traces"
    assert env["BAZAAR_OPS_API_URL"] == ops
    assert "BAZAAR_OPS_PORT" not in env
    inventory = fetch_json(f"http://127.0.0.1:{platform.ports['inventory']['ops']}/env")
    assert inventory["BAZAAR_PORT"] == str(platform.ports["inventory"]["grpc"])
    assert inventory["BAZAAR_OPS_PORT"] == str(platform.ports["inventory"]["ops"])


def test_nats_server_runs_with_the_runners_gc_target(platform: Platform) -> None:
    nats = platform.pids["nats"]
    environ = Path(f"/proc/{nats}/environ").read_bytes().split(b"\0")
    assert f"GOGC={os.environ.get('GOGC', cluster.NATS_GOGC)}".encode() in environ


def test_every_port_is_distinct(platform: Platform) -> None:
    ports = [port for roles in platform.ports.values() for port in roles.values()]

    # nats 2, smtp, ops, auth, inventory 2, worker, gateway
    assert len(ports) == len(set(ports)) == 9


def test_migrations_and_seeds_ran_once_with_the_demo_files(platform: Platform) -> None:
    lines = (platform.home.root / "standin.log").read_text().splitlines()

    assert lines.count("migrate") == 3  # auth, inventory, notification: the gateway has no db
    seeds = sorted(Path(line.split()[1]).name for line in lines if line.startswith("seed"))
    assert seeds == ["products.json", "users.json"]
    assert platform.home.seeded_marker.exists()


def test_the_home_holds_logs_maildir_and_state(platform: Platform) -> None:
    home = platform.home
    assert {"tmp", "new", "cur"} <= {p.name for p in home.mail.iterdir()}
    assert (home.nats / "jetstream").is_dir()
    assert "starting" in home.log_tail("gateway")

    state = read_state(home.state_file)
    assert state is not None and state["public_url"] == platform.public_url
    by_name = {p["name"]: p for p in state["processes"]}
    assert by_name["gateway"]["pid"] == platform.pids["gateway"]
    assert by_name["inventory"]["ports"] == platform.ports["inventory"]
    assert by_name["auth"]["state"] == "ready" and by_name["auth"]["url"] == platform.url("auth")


def test_mail_sent_to_the_sink_is_readable(platform: Platform) -> None:
    with smtplib.SMTP("127.0.0.1", platform.ports["smtp"]["smtp"], timeout=5) as client:
        client.sendmail("shop@bazaar.local", ["amy@example.com"], "Subject: paid\n\nthanks\n")

    assert [m["Subject"] for m in platform.mails_to("amy@example.com")] == ["paid"]


def test_a_killed_service_is_restarted_and_counted(platform: Platform) -> None:
    first = platform.pids["auth"]

    platform.kill("auth", signal.SIGKILL)

    eventually(
        lambda: platform.state("auth") == State.READY and platform.pids["auth"] != first, timeout=10
    )
    assert not running(first)
    state = read_state(platform.home.state_file)
    assert state is not None
    assert next(p for p in state["processes"] if p["name"] == "auth")["restarts"] == 1


def test_a_stopped_process_can_be_started_again(platform: Platform) -> None:
    platform.stop_process("nats")
    assert platform.state("nats") == State.STOPPED and platform.pids["nats"] is None

    platform.start_process("nats")

    assert platform.wait_ready("nats", timeout=20)


def test_stop_leaves_nothing_behind_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = make(home)
    platform.start(timeout=60)
    pids = [pid for pid in platform.pids.values() if pid]

    platform.stop()

    assert len(pids) == 7  # nats, smtp, ops and four services
    eventually(lambda: not any(running(pid) for pid in pids), timeout=15)
    state = read_state(platform.home.state_file)
    assert state is not None and state["pid"] is None
    assert all(p["pid"] is None and p["state"] == "stopped" for p in state["processes"])

    again = make(home)
    again.start(timeout=60)
    again.stop()
    lines = (platform.home.root / "standin.log").read_text().splitlines()
    assert lines.count("migrate") == 6 and sum(line.startswith("seed") for line in lines) == 2


def test_the_public_port_must_be_free(tmp_path: Path, platform: Platform) -> None:
    with pytest.raises(PortInUse, match=f"port {platform.public_port} is in use; set BAZAAR_PORT="):
        make(tmp_path / "other", platform.public_port).start(timeout=60)


def test_one_home_one_runner(platform: Platform) -> None:
    state_file = platform.home.state_file
    original = state_file.read_text()
    # Pretend another live process (our parent) owns this home.
    state_file.write_text(json.dumps({**json.loads(original), "pid": os.getppid()}))
    try:
        with pytest.raises(AlreadyRunning, match="bazaar stop"):
            make(platform.home.root).start(timeout=60)
    finally:
        state_file.write_text(original)


def test_a_failing_migration_stops_start_up_with_its_log(tmp_path: Path) -> None:
    platform = make(tmp_path / "home", extra_env={"STANDIN_FAIL": "migrate"})

    with pytest.raises(StartupError) as caught:
        platform.start(timeout=60)

    message = str(caught.value)
    assert message.startswith("crashed while starting: ")
    assert "migrate fails on purpose" in message
    assert all(pid is None for pid in platform.pids.values())


def test_a_service_that_keeps_crashing_fails_start_up_with_its_log(tmp_path: Path) -> None:
    platform = make(tmp_path / "home", extra_env={"STANDIN_FAIL": "serve"})

    with pytest.raises(StartupError) as caught:
        platform.start(timeout=30)

    message = str(caught.value)
    assert message.startswith("crashed while starting: ")
    assert "serve fails on purpose" in message
    assert all(pid is None for pid in platform.pids.values())
