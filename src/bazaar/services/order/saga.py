"""The checkout saga's I/O: performing an order's current step against a neighbour
(`StepPerformer`), and the background runner that drives every pending order through
its steps (`SagaRunner`). What follows what is decided in `domain.advance`, not here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

from bazaar.platform import metrics, telemetry
from bazaar.platform.db import Database
from bazaar.platform.events import new_event
from bazaar.platform.logs import get_logger
from bazaar.platform.outbox import add_to_outbox
from bazaar.services.order import domain
from bazaar.services.order.domain import CartLine, Order, Outcome, SagaPolicy, Step
from bazaar.services.order.ports import (
    Charge,
    Commitment,
    Inventory,
    NeighbourUnavailable,
    Payments,
    Release,
    Reservation,
)
from bazaar.services.order.store import OrderRepository

log = get_logger(__name__)

# The age of the oldest pending order is read at most this often.
BACKLOG_EVERY_SECONDS = 1.0

# Span attributes, the ops view's too (bazaar.runner.ops): which order a span is of, and
# which saga step it performed, how.
ORDER_ATTRIBUTE = "bazaar.order_id"
STEP_ATTRIBUTE = "bazaar.saga.step"
OUTCOME_ATTRIBUTE = "bazaar.saga.outcome"
ATTEMPT_ATTRIBUTE = "bazaar.saga.attempt"


def utc_now() -> datetime:
    return datetime.now(UTC)


class StepPerformer:
    """Performs one saga step and says how it went. Never raises: whatever goes wrong
    talking to a neighbour is `UNAVAILABLE`, so the step is tried again later."""

    def __init__(self, inventory: Inventory, payments: Payments) -> None:
        self.inventory = inventory
        self.payments = payments

    async def perform(self, order: Order) -> Outcome:
        step, started = order.saga.step.value, time.perf_counter()
        outcome = await self._attempt(order)
        latency = metrics.saga_step_latency.labels(step, outcome.value)
        metrics.observe(latency, time.perf_counter() - started)
        return outcome

    async def _attempt(self, order: Order) -> Outcome:
        try:
            return await self._perform(order)
        except NeighbourUnavailable as exc:
            log.warning(
                "saga step unavailable", order_id=order.id, step=order.saga.step, error=str(exc)
            )
        except Exception:  # an adapter's surprise must not lose the order: retry later
            log.exception("saga step failed", order_id=order.id, step=order.saga.step)
        return Outcome.UNAVAILABLE

    async def _perform(self, order: Order) -> Outcome:
        step = order.saga.step
        if step is Step.RESERVE:
            lines = [CartLine(item.product_id, item.qty) for item in order.items]
            reserved = await self.inventory.reserve(order.id, lines)
            return Outcome.DONE if reserved is Reservation.RESERVED else Outcome.REFUSED
        if step is Step.CHARGE:
            charged = await self.payments.charge(order.id, order.total_cents)
            return Outcome.DONE if charged is Charge.CAPTURED else Outcome.REFUSED
        if step is Step.CONFIRM:
            committed = await self.inventory.commit(order.id)
            return Outcome.DONE if committed is Commitment.COMMITTED else Outcome.REFUSED
        if step is Step.REFUND:
            # Refunded, or voided: a charge still in flight can no longer be taken.
            await self.payments.refund(order.id, order.total_cents)
            return Outcome.DONE
        if step is Step.RELEASE:
            if await self.inventory.release(order.id) is Release.ALREADY_COMMITTED:
                # Cannot happen by the saga's construction (commit only follows a capture
                # and is never compensated); retrying would not help, so say it loudly.
                log.error("cancelling an order whose stock was committed", order_id=order.id)
            return Outcome.DONE
        raise ValueError(f"order {order.id} has no step to perform ({step})")


class SagaRunner:
    """Drives pending orders through their steps, in the background, from the database.

    It leases due orders (so that replicas never work on the same one), runs each in its
    own task (at most `concurrency` at once) through every step that is due at once, and
    writes each transition that must be durable together with its event (see
    `domain.needs_recording`). A new order is inserted already leased to this runner
    (`starting`: the runner is checkout's `ports.SagaStarter`), so that its saga starts at
    once, from memory, without a claim. Start-up picks up whatever was left.
    """

    def __init__(
        self,
        db: Database,
        steps: StepPerformer,
        policy: SagaPolicy,
        *,
        concurrency: int = 32,
        poll_seconds: float = 0.5,
        lease_seconds: float = 30.0,
        take_over_leases: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._steps = steps
        self._policy = policy
        self._concurrency = concurrency
        self._poll_seconds = poll_seconds
        self._lease = timedelta(seconds=lease_seconds)
        # With one process per database (SQLite), leases found at start-up were left by
        # our own crashed predecessor: take them over instead of waiting them out.
        self._take_over_leases = take_over_leases
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[str, int] = {}  # order id -> the version our lease wrote
        self._running = False
        # Orders may be due that found no free slot: look again as soon as one frees up.
        self._more_due = False
        self._backlog_read_at = float("-inf")
        deadline = policy.payment_deadline + policy.refund_grace
        metrics.saga_deadline.set(deadline.total_seconds())

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        if self._take_over_leases:
            async with self._db.transaction() as session:
                interrupted = await OrderRepository(session).release_all_leases()
            if interrupted:
                log.info("resuming interrupted sagas", orders=interrupted)
        self._running = True
        self._loop_task = asyncio.create_task(self._run(), name="saga-runner")

    async def stop(self) -> None:
        self._running = False
        if self._loop_task is not None:  # first: no new saga starts while the rest stop
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        held = list(self._held.items())
        self._held.clear()
        if held:
            try:
                async with self._db.transaction() as session:
                    await OrderRepository(session).release_leases(held)
            except Exception as exc:  # they run out by themselves
                log.warning("could not give saga leases back", error=str(exc))

    @contextlib.contextmanager
    def starting(self, order: Order) -> Iterator[datetime | None]:
        """Lease a new order to this runner while the caller inserts it: yields the lease
        to insert it with (at its version), or None when every slot is taken (the order is
        then claimed once one frees up). Once the block has inserted it, its saga starts at
        once from `order` as it is: no claim, no read. Should the process die first, the
        lease runs out (or is taken over at start-up) like any other."""
        if not self._running or len(self._held) >= self._concurrency:
            self._more_due = True
            yield None
            return
        self._held[order.id] = order.version
        lease_until = self._clock() + self._lease
        try:
            yield lease_until
        except BaseException:
            self._held.pop(order.id, None)
            raise
        if self._held.get(order.id) == order.version:  # not stopped meanwhile
            # The task starts in the checkout's context: the saga is part of its trace.
            self._spawn(order.id, functools.partial(self._traced, order, lease_until, None))

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self._claim_due()
                await self._measure_backlog()
            except Exception as exc:  # database busy or down: try again at the next poll
                log.warning("saga runner could not read its orders", error=str(exc))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
            # cancellation that arrives together with a wake-up, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wakeup.wait()

    async def _claim_due(self) -> None:
        free = self._concurrency - len(self._held)
        if free <= 0:
            self._more_due = True
            return
        now = self._clock()
        lease_until = now + self._lease
        async with self._db.transaction() as session:
            claims = await OrderRepository(session).claim_due(
                now, lease_until, free, exclude=self._held.keys()
            )
        self._more_due = len(claims) == free  # a full batch: there may be more
        for order_id, version in claims:
            self._held[order_id] = version
            self._spawn(order_id, functools.partial(self._resume, order_id, version, lease_until))

    async def _measure_backlog(self) -> None:
        """The age of the oldest pending order, for the stuck-saga alert; not on every
        pass (under load the loop is woken far more often than once a second)."""
        if time.monotonic() - self._backlog_read_at < BACKLOG_EVERY_SECONDS:
            return
        self._backlog_read_at = time.monotonic()
        async with self._db.reading() as session:
            since = await OrderRepository(session).oldest_pending_since()
        age = (self._clock() - since).total_seconds() if since else 0.0
        metrics.saga_oldest_pending.set(max(age, 0.0))

    def _spawn(self, order_id: str, saga: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(self._drive(order_id, saga), name=f"saga-{order_id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._more_due:
            self.wake()  # a slot is free for an order that found none

    async def _drive(self, order_id: str, saga: Callable[[], Awaitable[None]]) -> None:
        try:
            await saga()
        except asyncio.CancelledError:
            raise  # stopping: stop() gives the lease back
        except Exception:
            log.exception("saga interrupted; retried when its lease runs out", order_id=order_id)
        self._held.pop(order_id, None)

    async def _resume(self, order_id: str, version: int, lease_until: datetime) -> None:
        """Run a claimed order from where its last write left it."""
        async with self._db.reading() as session:  # the writes check the version
            order = await OrderRepository(session).get(order_id)
        if order is None or order.is_final or order.version != version:
            return
        checkout: dict[str, str] = {}
        if telemetry.enabled():
            async with self._db.reading() as session:
                checkout = await OrderRepository(session).trace_context(order_id)
        await self._traced(order, lease_until, checkout)

    async def _traced(
        self, order: Order, lease_until: datetime, resumed_from: dict[str, str] | None
    ) -> None:
        """`_run_steps` in a span: a child of the checkout's (a saga started with it), or
        for a saga resumed later (after a crash, a lease run out, a wait for payment) the
        root of a trace of its own, linked back to the checkout's trace."""
        resumed = resumed_from is not None
        with telemetry.span(
            "saga resume" if resumed else "saga",
            parent={} if resumed else None,
            links=[resumed_from] if resumed_from else (),
            attributes={ORDER_ATTRIBUTE: order.id, "bazaar.saga.resumed": resumed},
        ):
            await self._run_steps(order, lease_until)

    async def _run_steps(self, order: Order, lease_until: datetime) -> None:
        """Perform the order's steps one after the other while the next one is due now,
        writing a transition only when `domain.needs_recording` says so, or when the lease
        is half spent (the write renews it). Between writes the order stays in memory: we
        hold its lease and know its version, so a re-read could tell us nothing new."""
        unrecorded: list[str] = []  # the steps performed since the last write, for the log
        while True:
            outcome = await self._take_step(order)
            metrics.saga_steps.labels(order.saga.step.value, outcome.value).inc()
            unrecorded.append(f"{order.saga.step.value}:{outcome.value}")
            now = self._clock()
            after = domain.advance(order, outcome, now, self._policy, jitter=random.random())
            if (
                not domain.needs_recording(order, after, now)
                and lease_until - now > self._lease / 2
            ):
                order = after
                continue
            due = after.saga.next_attempt_at
            goes_on = not after.is_final and due is not None and due <= now
            lease_until = now + self._lease
            saved = await self._record(order, after, lease_until if goes_on else None, unrecorded)
            if saved is None:
                log.warning(
                    "saga step lost a race; another runner has the order", order_id=order.id
                )
                return
            self._held[order.id] = saved.version
            if not goes_on:
                return
            order, unrecorded = saved, []

    async def _take_step(self, order: Order) -> Outcome:
        """The order's current step, in a span of its own that says how it went."""
        step = order.saga.step.value
        with telemetry.span(
            f"saga {step}",
            attributes={
                ORDER_ATTRIBUTE: order.id,
                STEP_ATTRIBUTE: step,
                ATTEMPT_ATTRIBUTE: order.saga.attempts + 1,
            },
        ) as span:
            outcome = await self._steps.perform(order)
            telemetry.set_attributes(span, {OUTCOME_ATTRIBUTE: outcome.value})
            if outcome is Outcome.UNAVAILABLE:
                telemetry.mark_error(span, f"{step}: the neighbour was unavailable")
        return outcome

    async def _record(
        self, before: Order, after: Order, lease_until: datetime | None, steps: list[str]
    ) -> Order | None:
        """The transition and its event, in one transaction (whose commit wakes the outbox
        relay); `steps` are those performed since the last write, for the log."""
        change = domain.event_of_change(before, after)
        async with self._db.transaction() as session:
            saved = await OrderRepository(session).save(after, lease_until=lease_until)
            if saved is None:
                return None
            if change:
                event_type, data = change
                await add_to_outbox(session, new_event(event_type, "order", data, after.id))
        log.info(
            "saga steps",
            order_id=after.id,
            steps=steps,
            next_step=after.saga.step.value,
            status=after.status.value,
        )
        return saved
