"""`bazaar`: run the embedded platform.

bazaar up                start everything (http://localhost:$BAZAAR_PORT), Ctrl-C stops
bazaar up --cluster      PostgreSQL, a NATS cluster, $BAZAAR_REPLICAS replicas behind Envoy
bazaar status            what runs, with each process's health
bazaar stop              stop the running `bazaar up`
bazaar migrate [SERVICE] bring every database (or one service's) to its latest revision
bazaar seed [SERVICE]    load the demo data again (everywhere, or into one service)
bazaar serve SERVICE     run one service in this process (what a container runs)
bazaar logs PROCESS      the tail of a process's log (-f to follow)
bazaar keys rotate       a new signing key for access tokens; expired ones retired
bazaar check             prove the checkout's invariants on the services' data
bazaar deadletters       list (or `replay SEQ|--all`) the events consumers gave up on
bazaar trace ORDER_ID    draw an order's trace across the services (the local store)
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from bazaar.runner import inspect_commands, scaffold
from bazaar.runner.demo import admin_login, demo_file
from bazaar.runner.home import Home, default_home, tail
from bazaar.runner.ops import terminal
from bazaar.runner.platform import Platform, StartupError, already_running
from bazaar.runner.ports import PortInUse, ensure_free
from bazaar.runner.probes import probe_for
from bazaar.runner.state import pid_alive, read_state, reclaim, running_runner
from bazaar.runner.topology import (
    SERVICES,
    ClusterShape,
    ServiceSpec,
    cluster_process_names,
    process_names,
)
from bazaar.runner.views import LiveView, PlainView, format_ports

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# What `up`, `migrate` and `seed` run; the runner's own tests swap in stand-ins.
TOPOLOGY: tuple[ServiceSpec, ...] = SERVICES


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    home = Home(args.home.resolve() if args.home else default_home())
    code: int = args.run(args, home)
    return code


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="bazaar", description="Run the Bazaar platform on this machine."
    )
    root.add_argument("--home", type=Path, help="data folder (default: $BAZAAR_HOME or ./.bazaar)")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up_ = commands.add_parser("up", help="start every process; Ctrl-C stops them all")
    up_.add_argument("--port", type=int, help="public port (default: $BAZAAR_PORT or 8000)")
    up_.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    up_.add_argument(
        "--cluster",
        action="store_true",
        help="PostgreSQL, a 3-node NATS cluster and $BAZAAR_REPLICAS (2) replicas of every "
        "service behind a load balancer (home: $BAZAAR_HOME or ./.bazaar-cluster)",
    )
    up_.set_defaults(run=up)
    commands.add_parser("status", help="show what runs and probe its health").set_defaults(
        run=status
    )
    stop_ = commands.add_parser("stop", help="stop the running `bazaar up`")
    stop_.add_argument("--timeout", type=float, default=15.0)
    stop_.set_defaults(run=stop)
    migrate_ = commands.add_parser("migrate", help="run every service's migrations, or one's")
    migrate_.add_argument(
        "service", nargs="?", choices=[s.name for s in TOPOLOGY if s.database], metavar="SERVICE"
    )
    migrate_.set_defaults(run=migrate)
    seed_ = commands.add_parser("seed", help="load the demo data (again), everywhere or in one")
    seed_.add_argument(
        "service", nargs="?", choices=[s.name for s in TOPOLOGY if s.seed_file], metavar="SERVICE"
    )
    seed_.set_defaults(run=seed)
    serve_ = commands.add_parser("serve", help="run one service in this process (containers)")
    serve_.add_argument("service", choices=[s.name for s in TOPOLOGY], metavar="SERVICE")
    serve_.set_defaults(run=serve)
    logs_ = commands.add_parser("logs", help="show the end of a process's log")
    logs_.add_argument(
        "process",
        choices=[*process_names(), *cluster_process_names(ClusterShape(replicas=8))],
        metavar="PROCESS",
    )
    logs_.add_argument("-n", "--lines", type=int, default=50)
    logs_.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs_.set_defaults(run=logs)
    keys_ = commands.add_parser("keys", help="rotate the auth service's signing keys")
    keys_.add_argument("action", choices=["rotate"], help="publish a new key, retire expired")
    keys_.set_defaults(run=keys)
    new_ = commands.add_parser("new", help="generate a new service in the platform's shape")
    new_.add_argument("kind", choices=["service"])
    new_.add_argument("name", help="the service's name: lower-case letters and digits")
    new_.add_argument("--root", type=Path, default=Path(), help="the checkout (default: .)")
    new_.set_defaults(run=new)
    inspect_commands.add_commands(commands)
    terminal.add_command(commands)
    return root


def new(args: argparse.Namespace, home: Home) -> int:
    try:
        scaffold.new_service(args.name, args.root.resolve())
    except scaffold.ScaffoldError as exc:
        print(f"bazaar new: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(scaffold.next_steps(args.name))
    return EXIT_OK


def public_port(args: argparse.Namespace) -> int:
    if args.port is not None:
        return int(args.port)
    raw = os.environ.get("BAZAAR_PORT") or "8000"
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"BAZAAR_PORT must be a port number, got {raw!r}") from None


class Interrupted(BaseException):
    """SIGTERM or SIGHUP, turned into an exception so it unwinds like Ctrl-C."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def cluster_shape(args: argparse.Namespace) -> ClusterShape | None:
    """--cluster's shape, from BAZAAR_REPLICAS and BAZAAR_POSTGRES_URL."""
    if not getattr(args, "cluster", False):
        return None
    raw = os.environ.get("BAZAAR_REPLICAS") or "2"
    try:
        replicas = int(raw)
    except ValueError:
        raise SystemExit(f"BAZAAR_REPLICAS must be a number, got {raw!r}") from None
    if not 1 <= replicas <= 8:
        raise SystemExit(f"BAZAAR_REPLICAS must be between 1 and 8, got {replicas}")
    return ClusterShape(replicas=replicas, postgres_url=os.environ.get("BAZAAR_POSTGRES_URL", ""))


def up(args: argparse.Namespace, home: Home) -> int:
    port = public_port(args)
    shape = cluster_shape(args)
    if shape is not None and not args.home and not os.environ.get("BAZAAR_HOME"):
        home = Home(Path(".bazaar-cluster").resolve())  # never mixed with the embedded home
    other = reclaim(home.state_file)
    if other:
        print(already_running(home, other), file=sys.stderr)
        return EXIT_USAGE
    try:
        ensure_free(port)  # before anything is drawn or started
    except PortInUse as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    tty = sys.stdout.isatty()
    view: LiveView | PlainView = LiveView(lambda: platform.snapshots()) if tty else PlainView()
    platform = Platform(
        home.root,
        port,
        services=TOPOLOGY,
        on_change=view.changed,
        on_message=view.say,
        cluster=shape,
    )
    # SIGTERM (bazaar stop) and SIGHUP (the terminal went away) stop like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    code = EXIT_OK
    try:
        with view:
            view.say(f"bazaar: home {home.root}, public port {port}")
            platform.start(timeout=args.timeout)
            view.say(banner(platform))
            while True:
                time.sleep(3600)
    except PortInUse as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        print(exc, file=sys.stderr)
        code = EXIT_FAILED
    except (KeyboardInterrupt, Interrupted):
        pass
    finally:
        # A second Ctrl-C must not cut the orderly stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if platform.ports:
            print("stopping…", file=sys.stderr, flush=True)
        platform.stop()
    return code


def banner(platform: Platform) -> str:
    email, password = admin_login()
    storefront = f"http://localhost:{platform.public_port}"
    return "\n".join(
        [
            f"Bazaar is ready: {storefront}",
            f"  admin login: {email} / {password}",
            f"  ops page (as the admin): {storefront}/ops  (bazaar trace ORDER_ID)",
            f"  logs: {platform.home.logs}/<process>.log  (bazaar logs <process>)",
            *(f"  note: {note}" for note in platform.notes()),
            "  Ctrl-C to stop",
        ]
    )


def status(args: argparse.Namespace, home: Home) -> int:
    state = read_state(home.state_file)
    runner = running_runner(home.state_file)
    if not state or not runner:
        print(f"bazaar is not running (home {home.root})")
        return EXIT_FAILED
    table = Table(
        title=f"bazaar (runner pid {runner}) {state.get('public_url', '')}", title_justify="left"
    )
    for column in ("process", "port", "pid", "state", "restarts", "health"):
        table.add_column(column)
    healthy = True
    for process in state.get("processes", []):
        alive = pid_alive(process.get("pid"))
        ok = alive and bool(process.get("health")) and probe_for(process["health"])()
        healthy = healthy and ok
        table.add_row(
            process["name"],
            format_ports(process.get("ports") or {}),
            str(process.get("pid") or "-"),
            process.get("state", "?"),
            str(process.get("restarts", 0)),
            "[green]ok[/]" if ok else "[red]failing[/]",
        )
    console = Console()
    console.print(table)
    for note in state.get("notes") or []:
        console.print(f"note: {note}")
    return EXIT_OK if healthy else EXIT_FAILED


def stop(args: argparse.Namespace, home: Home) -> int:
    runner = running_runner(home.state_file)
    if not runner:
        print(f"bazaar is not running (home {home.root})")
        return EXIT_OK
    os.kill(runner, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while pid_alive(runner) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(runner):
        print(
            f"the runner (pid {runner}) did not stop within {args.timeout:.0f} s", file=sys.stderr
        )
        return EXIT_FAILED
    print("bazaar stopped")
    return EXIT_OK


def migrate(args: argparse.Namespace, home: Home) -> int:
    if args.service:
        return run_service(args, "migrate")
    return _one_shot(home, seeding=False)


def seed(args: argparse.Namespace, home: Home) -> int:
    if args.service:
        spec = _spec(args.service)
        return run_service(args, "seed", str(demo_file(spec.seed_file)))
    return _one_shot(home, seeding=True)


def serve(args: argparse.Namespace, home: Home) -> int:
    return run_service(args, "serve")


def _spec(name: str) -> ServiceSpec:
    return next(s for s in TOPOLOGY if s.name == name)


def run_service(args: argparse.Namespace, *command: str) -> int:
    """`python -m bazaar.services.<name> COMMAND...`, in this process: a container's
    entrypoint is `bazaar`, and the service's own `__main__` stays the one place that
    knows how it boots. Its settings come from the environment (`--home` included), and a
    bad one exits with code 2, as the module does."""
    if args.home:
        os.environ["BAZAAR_HOME"] = str(args.home.resolve())
    module = _spec(args.service).module
    sys.argv = [module, *command]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return EXIT_OK


def _one_shot(home: Home, seeding: bool) -> int:
    platform = Platform(home.root, services=TOPOLOGY, on_message=PlainView().say)
    try:
        platform.migrate()
        if seeding:
            platform.seed()
    except StartupError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    print("done")
    return EXIT_OK


def keys(args: argparse.Namespace, home: Home) -> int:
    """`bazaar keys rotate`: the auth service publishes a new signing key (it signs once
    every verifier can know it) and retires keys whose tokens have all expired. Runs with
    this environment (BAZAAR_AUTH_KEY_SECRET...), whether or not the platform runs."""
    auth = next(s for s in TOPOLOGY if s.name == "auth")
    result = subprocess.run(
        [sys.executable, "-m", auth.module, "rotate-keys"],
        env={**os.environ, "BAZAAR_HOME": str(home.root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        return EXIT_FAILED
    sys.stdout.write(result.stdout)
    return EXIT_OK


def logs(args: argparse.Namespace, home: Home) -> int:
    path = home.log(args.process)
    if not path.exists():
        print(f"no log yet for {args.process} ({path})", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(tail(path, args.lines))
    if not args.follow:
        return EXIT_OK
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            while True:
                chunk = file.read()
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
