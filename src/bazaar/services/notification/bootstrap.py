"""The composition root: settings in, a ready app out. Tests pass their own `db` and `bus`.

The worker and its HTTP side-app are one process and one event loop: the app's lifespan
starts the bus (which runs the consumers) and stops it on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database
from bazaar.platform.serving import run_asgi
from bazaar.platform.web import bus_resource, create_app, database_resource, standard_readiness
from bazaar.services.notification import app as entrypoints
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
    entrypoints.subscribe(events, database, smtp)  # before the bus starts

    async def smtp_check() -> None:
        await smtp.ping()

    @asynccontextmanager
    async def smtp_connections(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await smtp.close()  # after the bus stopped: no mail is on its way

    return create_app(
        "notification",
        resources=[database_resource(database), smtp_connections, bus_resource(events)],
        readiness=[*standard_readiness(database, events), smtp_check],
    )


def serve(settings: ServiceSettings) -> None:
    assert isinstance(settings, NotificationSettings)
    run_asgi(build_app(settings), settings)


def main() -> None:
    run_service_cli(NotificationSettings, serve, migrations_dir=MIGRATIONS)
