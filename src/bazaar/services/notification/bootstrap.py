"""The composition root: settings in, a ready app out. Tests pass their own `db`, `bus`
and `mailer`.

The worker and its HTTP side-app are one process and one event loop: the app's lifespan
starts the mail sender and the bus (which runs the consumers), and stops them on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli, serve_asgi
from bazaar.platform.db import Database
from bazaar.platform.web import bus_resource, create_app, database_resource, standard_readiness
from bazaar.services.notification.app import subscribe
from bazaar.services.notification.handlers import NotificationService
from bazaar.services.notification.mailer import SmtpMailer
from bazaar.services.notification.settings import NotificationSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def build_mailer(settings: NotificationSettings) -> SmtpMailer:
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_from,
        timeout=settings.smtp_timeout_seconds,
    )


def build_app(
    settings: NotificationSettings,
    *,
    db: Database | None = None,
    bus: Bus | None = None,
    mailer: SmtpMailer | None = None,
) -> FastAPI:
    database = db or Database(settings.database_url)
    events = bus or Bus(settings.broker_url, "notification")
    smtp = mailer or build_mailer(settings)
    notifications = NotificationService(database, smtp)
    subscribe(events, database, notifications)  # before the bus starts

    async def smtp_check() -> None:
        await smtp.ping()

    @asynccontextmanager
    async def sending(app: FastAPI) -> AsyncIterator[None]:
        notifications.sender.start()
        try:
            yield
        finally:
            # After the bus stopped, so nothing queues any more; the pass under way ends
            # and marks what it sent, then the idle SMTP connections are closed.
            await notifications.sender.stop()
            await smtp.close()

    return create_app(
        "notification",
        provides=notifications,
        resources=[database_resource(database), sending, bus_resource(events)],
        readiness=[*standard_readiness(database, events), smtp_check],
    )


def main() -> None:
    run_service_cli(NotificationSettings, serve_asgi(build_app), migrations_dir=MIGRATIONS)
