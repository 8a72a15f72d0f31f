"""The broker under a whole platform in system and fault tests, by kind: the nats-server
the runner starts and supervises, or a private RabbitMQ node the test starts and gives
the platform as BAZAAR_BROKER_URL (the runner then starts no nats-server). Faults are
done to either the same way: `kill()` (kill -9, back at once, as the supervisor brings
nats back) and `restart()` (a clean stop, then start)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bazaar.runner.platform import Platform
from bazaar.testing.rabbitmq import RabbitMQServer, require_rabbitmq_server

PLATFORM_BROKERS = ("nats", "rabbitmq")


class PlatformBroker:
    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.server = RabbitMQServer(folder) if kind == "rabbitmq" else None
        self.platform: Platform | None = None
        self._work: threading.Thread | None = None

    @classmethod
    @contextmanager
    def running(cls, kind: str, folder: Path) -> Iterator[PlatformBroker]:
        """A started broker of `kind`, closed after the block. RabbitMQ needs its server
        installed (`require_rabbitmq_server`: skipped here, failed in CI)."""
        if kind == "rabbitmq":
            require_rabbitmq_server()
        broker = cls(kind, folder).start()
        try:
            yield broker
        finally:
            broker.close()

    @property
    def env(self) -> dict[str, str]:
        """What the platform needs to use this broker (nothing for its own NATS)."""
        return {"BAZAAR_BROKER_URL": self.server.url} if self.server else {}

    def start(self) -> PlatformBroker:
        if self.server is not None:
            self.server.start()
        return self

    def close(self) -> None:
        self._finish()
        if self.server is not None:
            self.server.close()

    def kill(self) -> None:
        """kill -9 the broker; it comes back at once (a supervisor's restart)."""
        if self.server is None:
            self._platform().kill("nats")
            return
        server = self.server
        server.kill()

        def again() -> None:
            server.start()

        self._in_background(again)

    def restart(self) -> None:
        """SIGTERM, and up again at once."""
        if self.server is None:
            self._platform().restart("nats")
            return
        server = self.server

        def stop_then_start() -> None:
            server.stop()
            server.start()

        self._in_background(stop_then_start)

    async def ready(self, timeout: float = 60.0) -> bool:  # noqa: ASYNC109
        if self.server is None:
            return await asyncio.to_thread(self._platform().wait_ready, "nats", timeout)
        await asyncio.to_thread(self._finish, timeout)
        return self._work is None

    def _platform(self) -> Platform:
        assert self.platform is not None, "no platform runs on this broker yet"
        return self.platform

    def _in_background(self, work: Callable[[], None]) -> None:
        # A RabbitMQ node takes seconds to stop and start: the batch goes on meanwhile.
        self._finish()
        self._work = threading.Thread(target=work, name="broker-fault", daemon=True)
        self._work.start()

    def _finish(self, timeout: float = 60.0) -> None:
        if self._work is not None:
            self._work.join(timeout)
            if not self._work.is_alive():
                self._work = None
