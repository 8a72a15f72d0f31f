"""Bazaar run from its image, the way the CI container job does it: every service in its
own podman container (host network, read-only root, uid 10001, /tmp a tmpfs), PostgreSQL
and a 3-node NATS JetStream cluster as processes on loopback, the SMTP sink in a container
writing a Maildir this process reads. Used by test_image_story.py.

    with Deployment(image, folder, postgres_url) as shop:
        shop.public_url, shop.maildir
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from bazaar.runner.ports import LOOPBACK, free_ports
from bazaar.runner.topology import SERVICES, ServiceSpec
from bazaar.testing import nats_server_binary

UID = "10001"  # the image's user; the Maildir must be writable by it
READY_TIMEOUT = 120.0


class DeploymentFailed(Exception):
    """A container did not do its job; the message has its log's tail."""


def podman(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise DeploymentFailed(f"podman {' '.join(args[:4])}…: {result.stderr.strip()[-2000:]}")
    return result.stdout


def logs_of(container: str, lines: int = 0) -> str:
    """A container's output, stdout and stderr interleaved as they came."""
    tail = ["--tail", str(lines)] if lines else []
    result = subprocess.run(
        ["podman", "logs", *tail, container],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout


@dataclass
class Ports:
    """Every port of the deployment, picked free on loopback."""

    public: int
    services: dict[str, int]  # each service's main port (gRPC for inventory)
    inventory_ops: int
    smtp: int
    nats_clients: list[int]
    nats_routes: list[int]

    @classmethod
    def pick(cls) -> Ports:
        names = [s.name for s in SERVICES if not s.public]
        picked = iter(free_ports(len(names) + 9))
        return cls(
            public=next(picked),
            services={name: next(picked) for name in names},
            inventory_ops=next(picked),
            smtp=next(picked),
            nats_clients=[next(picked) for _ in range(3)],
            nats_routes=[next(picked) for _ in range(3)],
        )

    def port_of(self, service: ServiceSpec) -> int:
        return self.public if service.public else self.services[service.name]

    def health_url(self, service: ServiceSpec) -> str:
        port = self.inventory_ops if service.kind == "grpc" else self.port_of(service)
        return f"http://{LOOPBACK}:{port}"


@dataclass
class Deployment:
    image: str
    folder: Path
    # A server where this deployment may create databases; credentials never in a repr.
    postgres_url: str = field(repr=False)
    redis_url: str = field(default="", repr=False)
    ports: Ports = field(default_factory=Ports.pick)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    auth_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    _stack: ExitStack = field(default_factory=ExitStack)
    _containers: list[str] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.public}"

    @property
    def mail_volume(self) -> Path:
        return self.folder / "mail"

    @property
    def maildir(self) -> Path:
        # A folder inside the volume: the sink makes a Maildir only where none exists.
        return self.mail_volume / "inbox"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.mail_volume.mkdir(mode=0o700)
        os.chown(self.mail_volume, int(UID), int(UID))
        self._stack.enter_context(self._databases())
        self._stack.enter_context(self._nats_cluster())
        self._stack.callback(self._remove_containers)
        self._container("smtp", *self._smtp_command(), entrypoint="python")
        self._one_shots("migrate", [s.name for s in SERVICES if s.database])
        self._one_shots("seed", [s.name for s in SERVICES if s.seed_file])
        for service in SERVICES:
            self._container(service.name, "serve", service.name, env=self._env(service))
        self._wait_ready()

    def stop(self) -> None:
        self._stack.close()

    # -- infrastructure -----------------------------------------------------------------

    def database_url(self, service: str) -> str:
        url = make_url(self.postgres_url).set(database=f"bazaar_{service}_{self.run_id}")
        return url.render_as_string(hide_password=False)

    @contextmanager
    def _databases(self) -> Iterator[None]:
        """One PostgreSQL database per service, as in production; dropped afterwards."""
        names = [make_url(self.database_url(s.name)).database for s in SERVICES if s.database]
        asyncio.run(self._admin([f'CREATE DATABASE "{name}"' for name in names]))
        try:
            yield
        finally:
            drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names]
            asyncio.run(self._admin(drops))

    async def _admin(self, statements: list[str]) -> None:
        import asyncpg

        admin = make_url(self.postgres_url).set(drivername="postgresql")
        connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    @contextmanager
    def _nats_cluster(self) -> Iterator[None]:
        """Three JetStream nodes routed to each other (what the StatefulSet runs)."""
        routes = ",".join(f"nats://{LOOPBACK}:{port}" for port in self.ports.nats_routes)
        processes = []
        for index, (client, route) in enumerate(
            zip(self.ports.nats_clients, self.ports.nats_routes, strict=True)
        ):
            log = (self.logs / f"nats-{index}.log").open("wb")
            self._stack.callback(log.close)
            command = [
                nats_server_binary(),
                "-js",
                "-n",
                f"nats-{index}",
                "-a",
                LOOPBACK,
                "-p",
                str(client),
                "-sd",
                str(self.folder / f"nats-{index}"),
                "--cluster_name",
                "bazaar",
                "--cluster",
                f"nats://{LOOPBACK}:{route}",
                "--routes",
                routes,
            ]
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        try:
            yield
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=15)

    def _smtp_command(self) -> list[str]:
        return [
            "-m",
            "bazaar.runner.smtp",
            "--host",
            LOOPBACK,
            "--port",
            str(self.ports.smtp),
            "--maildir",
            "/mail/inbox",
        ]

    # -- containers -----------------------------------------------------------------------

    def _env(self, service: ServiceSpec | None = None) -> dict[str, str]:
        """What the runner gives each process (runner/platform.py), for production."""
        env = {
            "BAZAAR_ENVIRONMENT": "production",
            "BAZAAR_HOST": LOOPBACK,  # host networking: never the machine's other addresses
            "BAZAAR_BROKER_URL": ",".join(
                f"nats://{LOOPBACK}:{port}" for port in self.ports.nats_clients
            ),
            "BAZAAR_SMTP_HOST": LOOPBACK,
            "BAZAAR_SMTP_PORT": str(self.ports.smtp),
            "BAZAAR_MAILDIR": "/mail/inbox",
        }
        if self.redis_url:
            env["BAZAAR_RATE_LIMIT_URL"] = self.redis_url
        for other in SERVICES:
            if other.neighbour_env:
                address = f"{LOOPBACK}:{self.ports.port_of(other)}"
                env[other.neighbour_env] = address if other.kind == "grpc" else f"http://{address}"
        env["BAZAAR_JWKS_URL"] = f"{env['BAZAAR_AUTH_URL']}/.well-known/jwks.json"
        if service is not None and service.name == "auth":
            env["BAZAAR_AUTH_KEY_SECRET"] = self.auth_secret  # auth's alone
        if service is not None:
            env["BAZAAR_PORT"] = str(self.ports.port_of(service))
            if service.database:
                env["BAZAAR_DATABASE_URL"] = self.database_url(service.name)
            if service.kind == "grpc":
                env["BAZAAR_OPS_PORT"] = str(self.ports.inventory_ops)
        return env

    def _run_args(self, name: str, env: dict[str, str]) -> list[str]:
        # Variables go through a file (0600), not the command line other users can read.
        env_file = self.folder / f"{name}.env"
        env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        env_file.chmod(0o600)
        return [
            "--network=host",
            "--read-only",
            "--tmpfs=/tmp:rw,size=64m,mode=1777",
            f"--user={UID}:{UID}",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            f"--env-file={env_file}",
            f"--volume={self.mail_volume}:/mail",
        ]

    def _container(
        self, name: str, *command: str, env: dict[str, str] | None = None, entrypoint: str = ""
    ) -> None:
        container = f"bazaar-{self.run_id}-{name}"
        args = self._run_args(name, env or self._env())
        if entrypoint:
            args.append(f"--entrypoint={entrypoint}")
        podman("run", "--detach", f"--name={container}", *args, self.image, *command)
        self._containers.append(container)

    def _one_shots(self, command: str, services: list[str]) -> None:
        """`bazaar migrate|seed SERVICE` in a container each, all at once."""
        started = {}
        for name in services:
            spec = next(s for s in SERVICES if s.name == name)
            args = self._run_args(f"{command}-{name}", self._env(spec))
            started[name] = subprocess.Popen(
                ["podman", "run", "--rm", *args, self.image, command, name],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        for name, process in started.items():
            output, _ = process.communicate(timeout=180)
            (self.logs / f"{command}-{name}.log").write_bytes(output)
            if process.returncode != 0:
                tail = output.decode(errors="replace")[-3000:]
                raise DeploymentFailed(f"`{command} {name}` exited {process.returncode}:\n{tail}")

    def _wait_ready(self) -> None:
        pending = {s.name: f"{self.ports.health_url(s)}/readyz" for s in SERVICES}
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending and time.monotonic() < deadline:
                for name, url in list(pending.items()):
                    try:
                        if client.get(url).status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                time.sleep(0.5)
        if pending:
            raise DeploymentFailed(
                f"not ready within {READY_TIMEOUT:.0f} s: {', '.join(pending)}\n"
                + "\n".join(self.container_log(name) for name in pending)
            )

    def container_log(self, name: str, lines: int = 40) -> str:
        return f"--- {name} ---\n{logs_of(f'bazaar-{self.run_id}-{name}', lines)}"

    def _remove_containers(self) -> None:
        for container in reversed(self._containers):
            name = container.removeprefix(f"bazaar-{self.run_id}-")
            (self.logs / f"{name}.log").write_text(logs_of(container))
        if self._containers:
            podman("rm", "--force", "--time=5", *self._containers, check=False, timeout=60)
        self._containers.clear()
