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
    """Charge once per key: a replay answers what the first call answered."""
    async with db.transaction() as session:
        existing = await PaymentRepository(session).by_key(command.idempotency_key)
    if existing:
        return domain.check_replay(existing, command.order_id, command.amount_cents)
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
            if await repository.by_order(command.order_id):
                raise domain.IdempotencyMismatch(
                    f"order {command.order_id} was already charged under another key"
                )
            await repository.add(payment, command.idempotency_key)
    except IntegrityError:
        # A concurrent request with the same key won the race: answer what it stored.
        async with db.transaction() as session:
            winner = await PaymentRepository(session).by_key(command.idempotency_key)
        if winner is None:
            raise
        return domain.check_replay(winner, command.order_id, command.amount_cents)
    return payment


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
