"""The transactional outbox: an event is a row written in the same transaction as the
state change it reports; the relay publishes rows to the bus afterwards, in order.

A row is marked published only after the broker acknowledged it, so a crash between the
two publishes it again; consumers de-duplicate by event id (see `inbox`), and JetStream
drops the second copy within its duplicate window too (`Nats-Msg-Id`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform import metrics
from bazaar.platform.backoff import backoff
from bazaar.platform.bus import Bus, PublishIncomplete
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.logs import get_logger
from bazaar.platform.messagetrace import publication_spans, trace_headers, traced
from bazaar.platform.messaging_tables import outbox

log = get_logger(__name__)


# In `session.info` of a transaction that added events: its commit wakes the relay.
_EVENTS_ADDED = "bazaar.outbox.events_added"


async def add_to_outbox(session: AsyncSession, *events: Envelope) -> None:
    """Record events inside the caller's transaction; the relay of the session's database
    publishes them as soon as it commits. Each keeps the trace context of this moment
    (when tracing), which its consumers continue."""
    if not events:
        return
    session.info[_EVENTS_ADDED] = True
    now = datetime.now(UTC)
    await session.execute(
        insert(outbox),
        [
            {
                "event_id": e.id,
                "event_type": e.type,
                "envelope": traced(e).model_dump(mode="json"),
                "created_at": now,
            }
            for e in events
        ],
    )


class OutboxRelay:
    """Publishes unpublished outbox rows: at once after a commit of `db` that added events,
    and every `poll_seconds` (rows of a crashed process, a broker that was down)."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        service: str,
        *,
        batch_size: int = 200,
        poll_seconds: float = 0.5,
    ) -> None:
        self._db = db
        self._bus = bus
        self._service = service
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        db.after_commit(self._wake_if_events_added)

    def _wake_if_events_added(self, session: AsyncSession) -> None:
        if session.info.get(_EVENTS_ADDED):
            self.wake()

    def wake(self) -> None:
        """Publish now rather than at the next poll."""
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._service}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                published = await self.publish_pending()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down, database busy: wait and try again
                failures += 1
                published = 0
                log.warning(
                    "outbox relay failed", error=f"{type(exc).__name__}: {exc}", attempt=failures
                )
                await asyncio.sleep(backoff(failures, initial=0.2, maximum=5.0))
                continue
            if published < self._batch_size:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives with the wake-up, and stop() would hang.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds):
                        await self._wakeup.wait()
                self._wakeup.clear()

    async def publish_pending(self) -> int:
        """Publish one batch in order; returns how many rows were published."""
        if self._db.is_sqlite:
            return await self._publish_then_mark()
        return await self._publish_locked()

    def _unpublished(self) -> Select[tuple[int, Any, datetime]]:
        return (
            select(outbox.c.seq, outbox.c.envelope, outbox.c.created_at)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(self._batch_size)
        )

    async def _publish_then_mark(self) -> int:
        # SQLite has one writer at a time: publish outside any write transaction, so a
        # slow broker never stalls the service's own writes. One relay per database.
        async with self._db.reading() as session:
            rows = (await session.execute(self._unpublished())).all()
        self._measure_lag(rows)
        done: list[int] = []
        try:
            await self._publish(rows, done)
        finally:
            await self._mark_published(done)
        return len(done)

    async def _publish_locked(self) -> int:
        # Several replicas relay at once: each locks its batch, skipping rows another holds.
        async with self._db.transaction() as session:
            query = self._unpublished().with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            self._measure_lag(rows)
            done: list[int] = []
            try:
                await self._publish(rows, done)
            finally:
                if done:
                    await session.execute(
                        update(outbox)
                        .where(outbox.c.seq.in_(done))
                        .values(published_at=datetime.now(UTC))
                    )
        metrics.outbox_published.labels(self._service).inc(len(done))
        return len(done)

    def _measure_lag(self, rows: Sequence[Row[int, Any, datetime]]) -> None:
        """The batch starts with the oldest row left (of those no other replica holds):
        its age is the relay's lag, read with no query of its own."""
        lag = (datetime.now(UTC) - rows[0].created_at).total_seconds() if rows else 0.0
        metrics.outbox_lag.labels(self._service).set(max(lag, 0.0))

    async def _publish(self, rows: Sequence[Row[int, Any, datetime]], done: list[int]) -> None:
        """Publish the rows' events in order, pipelined, adding to `done` the seqs the
        broker stored: all of them, or, when it fails part-way, the leading ones it
        acknowledged before the error goes on up (the next pass publishes the rest again;
        the broker stores no second copy of one that did arrive)."""
        seqs = [row.seq for row in rows]
        envelopes = [Envelope.model_validate(row.envelope) for row in rows]
        try:
            with publication_spans(envelopes):
                await self._bus.publish_events(envelopes, headers=trace_headers(envelopes))
        except PublishIncomplete as exc:
            done.extend(seqs[: exc.acknowledged])
            raise
        done.extend(seqs)

    async def _mark_published(self, done: list[int]) -> None:
        if not done:
            return
        async with self._db.transaction() as session:
            await session.execute(
                update(outbox).where(outbox.c.seq.in_(done)).values(published_at=datetime.now(UTC))
            )
        metrics.outbox_published.labels(self._service).inc(len(done))

    async def pending(self) -> int:
        async with self._db.reading() as session:
            count = await session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
        metrics.outbox_pending.labels(self._service).set(count or 0)
        return count or 0
