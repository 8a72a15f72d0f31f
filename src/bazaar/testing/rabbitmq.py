"""A real RabbitMQ for tests: the one at BAZAAR_TEST_RABBITMQ_URL (CI starts it), or a
private node of Debian's `rabbitmq-server` under a temporary folder, started without
systemd (see MACHINE-NOTES: every path and port of the node is set by environment, so it
never touches /var or the default ports). Missing both: skipped on a developer's machine
with the reason, a failure in CI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bazaar.testing.servers import _missing, _wait_for_listener, free_port

RABBITMQ_URL_VARIABLE = "BAZAAR_TEST_RABBITMQ_URL"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
# About 5 s on an idle 2-core machine; much longer while the machine is busy.
START_TIMEOUT = 60.0


def rabbitmq_available() -> bool:
    return bool(os.environ.get(RABBITMQ_URL_VARIABLE)) or os.access(RABBITMQ_SERVER, os.X_OK)


def require_rabbitmq_server() -> str:
    """The server binary; skips (fails in CI) where `rabbitmq-server` is not installed."""
    if not os.access(RABBITMQ_SERVER, os.X_OK):
        _missing(
            f"RabbitMQ not found at {RABBITMQ_SERVER}: apt-get install rabbitmq-server, "
            f"or set {RABBITMQ_URL_VARIABLE} (CI installs and starts it)"
        )
    return RABBITMQ_SERVER


class RabbitMQServer:
    """A private RabbitMQ node in `folder`, on free loopback ports; `stop()` and `start()`
    again keep its data (a broker restart), `kill()` is a crash."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.node = f"bazaar{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._process: Any = None

    def environment(self) -> dict[str, str]:
        home = self.folder / "rabbitmq"
        return {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "ERL_EPMD_PORT": str(self.epmd_port),
        }

    def start(self, timeout: float = START_TIMEOUT) -> RabbitMQServer:
        binary = require_rabbitmq_server()
        home = self.folder / "rabbitmq"
        home.mkdir(parents=True, exist_ok=True)
        (home / "rabbitmq.conf").write_text("log.console = false\nlog.file.level = warning\n")
        (home / "enabled_plugins").write_text("[].\n")
        self._process = subprocess.Popen(
            [binary],
            env=self.environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its Erlang children go with it
        )
        try:
            _wait_for_listener(self.port, "rabbitmq-server", timeout)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM: the node stops its applications and syncs)."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10.0)

    def close(self) -> None:
        """Stop the node and the epmd it started (epmd outlives the node otherwise)."""
        self.stop()
        epmd = shutil.which("epmd")
        if epmd:
            subprocess.run(
                [epmd, "-port", str(self.epmd_port), "-kill"],
                capture_output=True,
                check=False,
                timeout=10,
            )

    def _signal(self, sig: int, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # The listener goes a moment after the process: wait, or a restart races it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                _wait_for_listener(self.port, "rabbitmq-server", 0.05)
            except TimeoutError:
                return
            time.sleep(0.1)
