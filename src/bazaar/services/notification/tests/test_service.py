"""The service end to end: events in through the bus, mails out through a real SMTP server,
a real database in between (SQLite and PostgreSQL; the migration tests on SQLite)."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, insert, inspect, select

from bazaar.contracts.events import OrderPaid
from bazaar.platform import messaging_tables
from bazaar.platform.bus import Bus
from bazaar.platform.consumers import ContractBroken, parse
from bazaar.platform.db import Database
from bazaar.platform.migrations import migrate
from bazaar.services.notification.bootstrap import MIGRATIONS, build_app
from bazaar.services.notification.settings import NotificationSettings
from bazaar.services.notification.store import mails_sent, metadata
from bazaar.services.notification.tests.conftest import (
    Collector,
    Service,
    SmtpServer,
    StartService,
    eventually,
    free_port,
)
from bazaar.services.notification.tests.factories import order_cancelled, order_paid
from bazaar.testing import migrated_database

ORDER_ID = "0f9c2b7e-4d1a-4c55-9a8e-2f1d3c4b5a69"


def handled(outcome: str, event_type: str = "order.paid") -> float:
    labels = {"service": "notification", "subject": f"bazaar.events.{event_type}"}
    return REGISTRY.get_sample_value("bazaar_messages_total", {**labels, "outcome": outcome}) or 0


async def test_order_paid_sends_one_confirmation(service: Service, smtp: SmtpServer) -> None:
    event = order_paid(ORDER_ID)
    await service.deliver(event)

    [mail] = smtp.delivered
    assert mail.rcpt_tos == ["ada@example.com"]
    assert mail.mail_from == "orders@bazaar.local"
    assert mail.message["To"] == "ada@example.com"
    assert mail.message["From"] == "Bazaar <orders@bazaar.local>"
    assert mail.message["Subject"] == "Your Bazaar order 0f9c2b7e is confirmed"
    assert mail.message["Message-ID"] == f"<{event.id}@bazaar.local>"
    body = mail.message.get_content()
    assert "2 x Blue Mug: $25.00 ($12.50 each)" in body
    assert "Total: $29.99" in body
    assert ORDER_ID in body

    [row] = await service.mails_sent()
    assert (row.event_id, row.order_id, row.kind, row.to) == (
        event.id,
        ORDER_ID,
        "confirmation",
        "ada@example.com",
    )
    assert row.subject == mail.message["Subject"]
    assert row.sent_at.tzinfo is not None


async def test_a_redelivered_event_sends_no_second_mail(service: Service, smtp: SmtpServer) -> None:
    event = order_paid(ORDER_ID)
    await service.deliver(event)
    await service.deliver(event)
    assert len(smtp.delivered) == 1
    assert len(await service.mails_sent()) == 1


async def test_another_paid_event_for_the_same_order_sends_no_second_mail(
    service: Service, smtp: SmtpServer
) -> None:
    first, second = order_paid(ORDER_ID), order_paid(ORDER_ID)
    assert first.id != second.id
    await service.deliver(first)
    await service.deliver(second)
    assert len(smtp.delivered) == 1
    [row] = await service.mails_sent()
    assert row.event_id == first.id


async def test_concurrent_deliveries_send_one_mail(service: Service, smtp: SmtpServer) -> None:
    events = [order_paid(ORDER_ID) for _ in range(3)]
    await asyncio.gather(*(service.deliver(e) for e in [*events, *events]))
    assert len(smtp.delivered) == 1
    assert len(await service.mails_sent()) == 1


async def test_order_cancelled_sends_a_cancellation(service: Service, smtp: SmtpServer) -> None:
    await service.deliver(order_cancelled(ORDER_ID, reason="out_of_stock"))
    [mail] = smtp.delivered
    assert mail.rcpt_tos == ["ada@example.com"]
    assert mail.message["Subject"] == "Your Bazaar order 0f9c2b7e was cancelled"
    assert "because some of the items you ordered are out of stock." in mail.message.get_content()
    [row] = await service.mails_sent()
    assert row.kind == "cancellation"


async def test_each_order_gets_its_own_mail(service: Service, smtp: SmtpServer) -> None:
    await service.deliver(order_paid("order-a", email="a@example.com"))
    await service.deliver(order_paid("order-b", email="b@example.com"))
    await service.deliver(order_cancelled("order-c", email="c@example.com"))
    assert sorted(m.rcpt_tos[0] for m in smtp.delivered) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]


async def test_smtp_down_keeps_the_mail_queued_records_nothing_sent_and_a_retry_sends(
    start_service: StartService,
) -> None:
    port = free_port()  # nothing listens here yet
    event = order_paid(ORDER_ID)
    async with start_service(port) as service:
        handled_before = handled("ok")
        await service.deliver(event)
        # The event is handled (the mail is owed, recorded with it): nothing for the bus
        # to retry. The sender tried once, was refused, and holds the mail for a retry.
        assert handled("ok") == handled_before + 1
        assert await service.mails_sent() == []
        [queued] = await service.mails_queued()
        assert (queued.event_id, queued.attempts) == (event.id, 1)
        assert queued.held_until > queued.queued_at

        # The relay comes back; the mail goes at its retry, once, and a redelivered event
        # sends nothing more.
        collector = Collector()
        controller = Controller(collector, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await eventually(lambda: bool(collector.delivered), "the retry")
            await service.deliver(event)
            await service.deliver(event)
        finally:
            controller.stop()
        assert len(collector.delivered) == 1
        assert len(await service.mails_sent()) == 1
        assert await service.mails_queued() == []


async def test_an_event_that_breaks_the_contract_is_refused(
    service: Service, smtp: SmtpServer
) -> None:
    bad = order_paid(ORDER_ID, total_cents="a lot")
    dead_letters = handled("dead_letter")
    await service.deliver(bad)
    assert handled("dead_letter") == dead_letters + 1  # at once: no retry can fix it
    with pytest.raises(ContractBroken, match="total_cents"):
        parse(OrderPaid, bad)
    assert smtp.delivered == []
    assert await service.mails_sent() == []
    # The service goes on with the next event.
    await service.deliver(order_paid(ORDER_ID))
    assert len(smtp.delivered) == 1


async def test_health_and_readiness(service: Service) -> None:
    assert (await service.http.get("/healthz")).json() == {"status": "ok"}
    ready = await service.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready"}
    metrics = await service.http.get("/metrics")
    assert metrics.status_code == 200
    assert "bazaar_http_requests_total" in metrics.text


async def test_not_ready_while_smtp_is_down(start_service: StartService) -> None:
    async with start_service(free_port()) as service:
        assert (await service.http.get("/healthz")).status_code == 200
        ready = await service.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert "smtp_check" in ready.json()["detail"]
        assert "database_reachable" not in ready.json()["detail"]


async def test_not_ready_while_the_bus_is_down(
    tmp_path: Path, db: Database, smtp: SmtpServer
) -> None:
    # The bus never started: its ping fails, the rest is fine.
    bus = Bus("memory://notification", "notification")
    settings = NotificationSettings(home=tmp_path, environment="test", smtp_port=smtp.port)
    app = build_app(settings, db=db, bus=bus)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notification"
    ) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["detail"].startswith("broker_reachable")


def test_the_migration_creates_the_mails_inbox_and_outbox_tables(tmp_path: Path) -> None:
    db = migrated_database(MIGRATIONS, tmp_path)

    async def tables() -> set[str]:
        async with db.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await db.dispose()
        return names

    assert {"mails_sent", "inbox", "outbox"} <= asyncio.run(tables())


def test_migrations_build_exactly_the_models_tables(tmp_path: Path) -> None:
    path = tmp_path / "notification.db"
    migrate(MIGRATIONS, f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        # Alembic accepts a list of metadata (as env.py passes it); its stub says one.
        targets = [metadata, messaging_tables.metadata]
        assert compare_metadata(context, targets) == []  # type: ignore[arg-type]
    engine.dispose()


def test_the_queue_migration_keeps_the_mails_sent_before_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}"
    migrate(MIGRATIONS, url, "0001")
    engine = create_engine(f"sqlite:///{tmp_path / 'notification.db'}")
    sent = {"event_id": "e-1", "order_id": "o-1", "kind": "confirmation", "to": "a@example.com"}
    with engine.begin() as connection:
        connection.execute(
            insert(mails_sent), {**sent, "subject": "Your order", "sent_at": datetime.now(UTC)}
        )
    migrate(MIGRATIONS, url)
    with engine.connect() as connection:
        [row] = connection.execute(select(mails_sent)).all()
    assert (row.event_id, row.attempts, row.held_until, row.body) == ("e-1", 0, None, None)
    assert row.sent_at is not None  # a mail sent, not one to send
    engine.dispose()
