"""A real SMTP server (aiosmtpd) on a free loopback port, a real database (every test that
takes `db` runs on SQLite and on PostgreSQL), and the bus in memory (memory://): the
service as it runs, minus the network."""

from __future__ import annotations

import asyncio
import email.policy
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Row, select

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.dependencies import provided
from bazaar.platform.events import Envelope
from bazaar.services.notification.bootstrap import MIGRATIONS, build_app
from bazaar.services.notification.handlers import NotificationService
from bazaar.services.notification.settings import NotificationSettings
from bazaar.services.notification.store import mails_sent
from bazaar.testing import DATABASE_BACKENDS, fresh_database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class Collector:
    """aiosmtpd handler that keeps every accepted message in memory."""

    def __init__(self) -> None:
        self.delivered: list[Delivered] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=email.policy.default).parsebytes(envelope.content)
        self.delivered.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    collector: Collector

    @property
    def delivered(self) -> list[Delivered]:
        return self.collector.delivered


@pytest.fixture(params=DATABASE_BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Every database test runs on SQLite and on PostgreSQL."""
    async with fresh_database(request.param, MIGRATIONS, tmp_path, "notification") as database:
        yield database


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(port, collector)
    finally:
        controller.stop()


# How long a test waits for what should take milliseconds: a bound for a stuck sender,
# not a speed claim (a loaded machine may take seconds).
PATIENCE = 30.0


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll `check` until it holds; fail after PATIENCE seconds (something sent by another
    thread, the SMTP server's, which no event of this loop can tell)."""
    pause = 0.02
    for _ in range(int(PATIENCE / pause)):
        if check():
            return
        await asyncio.sleep(pause)
    raise AssertionError(f"{what}: not within {PATIENCE:g} s")


@dataclass
class Service:
    bus: Bus
    db: Database
    http: httpx.AsyncClient
    notifications: NotificationService

    async def deliver(self, event: Envelope) -> None:
        """Publish `event` on the in-memory bus (the consumer runs before the publish
        returns), then wait until the sender has sent what it could."""
        await self.bus.publish_event(event)
        await self.settled()

    async def settled(self) -> None:
        """Once every queued mail the sender could send now has been tried."""
        async with asyncio.timeout(PATIENCE):
            await self.notifications.sender.settled()

    async def mails_sent(self) -> list[Row[Any]]:
        """The mails recorded as sent."""
        async with self.db.transaction() as session:
            return list(
                await session.execute(select(mails_sent).where(mails_sent.c.sent_at.is_not(None)))
            )

    async def mails_queued(self) -> list[Row[Any]]:
        """The mails waiting to be sent."""
        async with self.db.transaction() as session:
            return list(
                await session.execute(select(mails_sent).where(mails_sent.c.sent_at.is_(None)))
            )


StartService = Callable[[int], AbstractAsyncContextManager[Service]]


@pytest.fixture
def start_service(tmp_path: Path, db: Database) -> StartService:
    """Starts the service against the SMTP server on `smtp_port` (which may be down), on
    the test's database (a second start finds what the first left)."""

    @asynccontextmanager
    async def start(smtp_port: int) -> AsyncIterator[Service]:
        settings = NotificationSettings(home=tmp_path, environment="test", smtp_port=smtp_port)
        # memory://: each test (a loop of its own) starts with an empty broker; a service
        # started again within a test finds what waited for it.
        bus = Bus("memory://notification", "notification", max_deliveries=5)
        app = build_app(settings, db=db, bus=bus)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://notification"
            ) as http,
        ):
            yield Service(bus, db, http, provided(app, NotificationService))

    return start


@pytest.fixture
async def service(start_service: StartService, smtp: SmtpServer) -> AsyncIterator[Service]:
    async with start_service(smtp.port) as running:
        yield running
