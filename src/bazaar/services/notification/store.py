"""The mails_sent table and its repository (the inbox and outbox come from the platform).

A row is a mail the service owes a customer, one per (order, kind): the consumer writes it
in the inbox's transaction of the event that asked for it, with `sent_at` NULL, and the
sender (`sender.MailSender`) claims it, sends it and stamps `sent_at`. The table keeps its
name from before the queue because operators and `bazaar check` read it: a row with a
`sent_at` is a mail sent, as it always was.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import UtcDateTime
from bazaar.services.notification.domain import Mail, MailKind, QueuedMail

metadata = MetaData()

UNSENT = text("sent_at IS NULL")

mails_sent = Table(
    "mails_sent",
    metadata,
    # The event that asked for the mail: its Message-ID is made from this id.
    Column("event_id", String(64), primary_key=True),
    Column("order_id", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("to", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    # NULL only in rows of mails sent before the queue (revision 0002) kept no text.
    Column("body", Text, nullable=True),
    Column("queued_at", UtcDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # No sender takes the mail before then: another sender holds it while it sends, or
    # it waits before a retry after the relay refused it.
    Column("held_until", UtcDateTime(), nullable=True),
    Column("sent_at", UtcDateTime(), nullable=True),
    # The W3C trace context (JSON) of the event that queued it, which its send continues.
    Column("trace_context", Text, nullable=True),
    # Never two mails of one kind for one order, whatever events say so: the database
    # enforces it even when two deliveries race.
    UniqueConstraint("order_id", "kind", name="uq_mails_sent_order_kind"),
    # The mails waiting to be sent, oldest first, without reading those already sent.
    Index(
        "ix_mails_sent_unsent",
        "queued_at",
        sqlite_where=UNSENT,
        postgresql_where=UNSENT,
    ),
)

_c = mails_sent.c


@functools.cache
def _queue(dialect: str) -> Any:
    """INSERT that does nothing when the order already has its mail of this kind (queued
    or sent), or the event its row: one per dialect, built once (every event queues)."""
    return (
        (postgresql if dialect == "postgresql" else sqlite)
        .insert(mails_sent)
        .on_conflict_do_nothing()
    )


@functools.cache
def _claim(limit: int) -> Any:
    """Hold up to `limit` due mails for this sender, oldest first. On PostgreSQL, rows
    another replica is claiming right now are skipped, not waited for (SKIP LOCKED); once
    the claim commits, `held_until` keeps the others off them. SQLite has one writer at a
    time and ignores FOR UPDATE."""
    due = (
        select(_c.event_id)
        .where(
            _c.sent_at.is_(None), or_(_c.held_until.is_(None), _c.held_until <= bindparam("now"))
        )
        .order_by(_c.queued_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        update(mails_sent)
        .where(_c.event_id.in_(due.scalar_subquery()))
        .values(held_until=bindparam("hold_until"), attempts=_c.attempts + 1)
        .returning(
            _c.event_id,
            _c.order_id,
            _c.kind,
            _c.to,
            _c.subject,
            _c.body,
            _c.attempts,
            _c.trace_context,
        )
    )


_SENT = (
    update(mails_sent)
    .where(_c.event_id.in_(bindparam("event_ids", expanding=True)))
    .values(sent_at=bindparam("at"), held_until=None)
)
_RETRY = (
    update(mails_sent)
    .where(_c.event_id == bindparam("id"))
    .values(held_until=bindparam("retry_at"))
)
_RELEASE = update(mails_sent).where(_c.sent_at.is_(None)).values(held_until=None)


def _trace_context(stored: str | None) -> dict[str, str]:
    try:
        context = json.loads(stored) if stored else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in context.items()} if isinstance(context, dict) else {}


class MailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def queue(
        self,
        event_id: str,
        mail: Mail,
        now: datetime,
        trace_context: Mapping[str, str] | None = None,
    ) -> bool:
        """Queue `mail` unless its order has one of its kind already; True if queued now.
        `trace_context` (W3C headers) is the trace its send belongs to."""
        dialect = self._session.get_bind().dialect.name
        row = {
            "event_id": event_id,
            "order_id": mail.order_id,
            "kind": mail.kind.value,
            "to": mail.to,
            "subject": mail.subject,
            "body": mail.body,
            "queued_at": now,
            "trace_context": json.dumps(dict(trace_context)) if trace_context else None,
        }
        result = await self._session.execute(_queue(dialect), row)
        return getattr(result, "rowcount", 0) == 1

    async def claim_due(self, now: datetime, hold_until: datetime, limit: int) -> list[QueuedMail]:
        """The mails due now, each held until `hold_until` and counted as one attempt."""
        rows = await self._session.execute(_claim(limit), {"now": now, "hold_until": hold_until})
        return [
            QueuedMail(
                row.event_id,
                Mail(MailKind(row.kind), row.order_id, row.to, row.subject, row.body or ""),
                row.attempts,
                _trace_context(row.trace_context),
            )
            for row in rows
        ]

    async def mark_sent(self, event_ids: Sequence[str], at: datetime) -> None:
        if event_ids:
            await self._session.execute(_SENT, {"event_ids": list(event_ids), "at": at})

    async def retry_at(self, retries: Sequence[tuple[str, datetime]]) -> None:
        """Hold each refused mail until its retry time."""
        if retries:
            await self._session.execute(
                _RETRY, [{"id": event_id, "retry_at": at} for event_id, at in retries]
            )

    async def release_holds(self) -> None:
        """Every unsent mail due at once: for a sender that knows no other is sending."""
        await self._session.execute(_RELEASE)
