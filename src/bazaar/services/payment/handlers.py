"""The service layer: one function per use case, each one unit of work."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from bazaar.platform.db import Database
from bazaar.services.payment import domain
from bazaar.services.payment.domain import Payment, ProcessorMode
from bazaar.services.payment.store import PaymentRepository


@dataclass
class Processor:
    """The simulated processor's current behaviour, switchable at run time."""

    mode: ProcessorMode
    slow_seconds: float

    async def delay(self) -> None:
        if self.mode is ProcessorMode.SLOW:
            await asyncio.sleep(self.slow_seconds)


@dataclass(frozen=True)
class Charge:
    order_id: str
    amount_cents: int
    idempotency_key: str


async def charge(db: Database, processor: Processor, command: Charge) -> Payment:
    """Charge once per key: a replay answers what the first call answered. An order whose
    charge was cancelled (voided) is never charged: it answers the void."""
    async with db.transaction() as session:
        repository = PaymentRepository(session)
        existing = await repository.by_key(command.idempotency_key)
        void = await _void_of(repository, command.order_id)
    if existing:
        return domain.check_replay(existing, command.order_id, command.amount_cents)
    if void:
        return void
    await processor.delay()
    payment = Payment(
        payment_id=str(uuid.uuid4()),
        order_id=command.order_id,
        amount_cents=command.amount_cents,
        status=domain.charge_outcome(processor.mode),
        created_at=datetime.now(UTC),
    )
    try:
        async with db.transaction() as session:
            repository = PaymentRepository(session)
            replayed = await repository.by_key(command.idempotency_key)
            if replayed:  # the same key arrived while this one was at the processor
                return domain.check_replay(replayed, command.order_id, command.amount_cents)
            if void := await _void_of(repository, command.order_id):
                return void  # cancelled while this one was at the processor: take nothing
            if await repository.by_order(command.order_id):
                raise domain.IdempotencyMismatch(
                    f"order {command.order_id} was already charged under another key"
                )
            await repository.add(payment, command.idempotency_key)
    except IntegrityError:
        # A concurrent request with the same key, or the order's cancellation, won the
        # race: answer what it stored.
        async with db.transaction() as session:
            repository = PaymentRepository(session)
            winner = await repository.by_key(command.idempotency_key)
            void = await _void_of(repository, command.order_id)
        if winner is not None:
            return domain.check_replay(winner, command.order_id, command.amount_cents)
        if void is not None:
            return void
        raise
    return payment


async def _void_of(repository: PaymentRepository, order_id: str) -> Payment | None:
    payment = await repository.by_order(order_id)
    return payment if payment and payment.status is domain.PaymentStatus.VOIDED else None


@dataclass(frozen=True)
class Cancel:
    order_id: str
    amount_cents: int  # what the order would have paid: a void records it


async def cancel(db: Database, processor: Processor, command: Cancel) -> Payment:
    """The order gives up on its charge: refund it if it was taken, and if none was, void
    it, so that a charge still on its way takes nothing (see `charge`). Idempotent.

    Whichever commits first wins: the charge (then this refunds it) or the void (then
    the charge answers the void). Raises `ProcessorUnavailable` only when a capture must
    be refunded during an outage; voiding needs no processor."""
    now = datetime.now(UTC)
    for _ in range(2):  # a lost race on the order's unique payment is settled by a re-read
        try:
            async with db.transaction() as session:
                repository = PaymentRepository(session)
                payment = await repository.by_order(command.order_id)
                if payment is None:
                    void = domain.voided(
                        str(uuid.uuid4()), command.order_id, command.amount_cents, now
                    )
                    await repository.add(void, f"void:{command.order_id}")
                    return void
                cancelled = domain.cancel(payment, processor.mode, now)
                if cancelled != payment:
                    await repository.save(cancelled)
                return cancelled
        except IntegrityError:
            continue
    raise RuntimeError(f"cancelling the payment of {command.order_id} kept losing races")


async def refund(db: Database, processor: Processor, order_id: str) -> Payment | None:
    async with db.transaction() as session:
        repository = PaymentRepository(session)
        payment = await repository.by_order(order_id)
        if payment is None:
            return None
        refunded = domain.refund(payment, processor.mode, datetime.now(UTC))
        if refunded != payment:
            await repository.save(refunded)
    return refunded


async def find(db: Database, order_id: str) -> Payment | None:
    async with db.reading() as session:
        return await PaymentRepository(session).by_order(order_id)
