"""The service layer: one method per use case, each one unit of work."""

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

    @property
    def takes_time(self) -> bool:
        return self.mode is ProcessorMode.SLOW

    async def delay(self) -> None:
        if self.mode is ProcessorMode.SLOW:
            await asyncio.sleep(self.slow_seconds)


@dataclass(frozen=True)
class Charge:
    order_id: str
    amount_cents: int
    idempotency_key: str


@dataclass(frozen=True)
class Cancel:
    order_id: str
    amount_cents: int  # what the order would have paid: a void records it


@dataclass(frozen=True)
class PaymentService:
    """The payment use cases: the payments' database, and the (simulated) processor."""

    db: Database
    processor: Processor

    async def charge(self, command: Charge) -> Payment:
        """Charge once per key: a replay answers what the first call answered. An order
        whose charge was cancelled (voided) is never charged: it answers the void.

        A processor that answers at once is called inside the one transaction that checks
        and records the charge. A slow one is called outside any transaction (it must not
        hold the write lock): what is recorded is read first, and read again before
        recording."""
        if self.processor.takes_time:
            if (answer := await self._read_earlier_answer(command)) is not None:
                return answer
            await self.processor.delay()
        try:
            async with self.db.transaction() as session:
                repository = PaymentRepository(session)
                # A replay or a void that committed meanwhile (while at the processor) wins.
                if (answer := await _earlier_answer(repository, command)) is not None:
                    return answer
                payment = Payment(
                    payment_id=str(uuid.uuid4()),
                    order_id=command.order_id,
                    amount_cents=command.amount_cents,
                    status=domain.charge_outcome(self.processor.mode),
                    created_at=datetime.now(UTC),
                )
                await repository.add(payment, command.idempotency_key)
        except IntegrityError:
            # A concurrent request with the same key, or the order's cancellation, won the
            # race: answer what it stored.
            if (answer := await self._read_earlier_answer(command)) is not None:
                return answer
            raise
        return payment

    async def _read_earlier_answer(self, command: Charge) -> Payment | None:
        async with self.db.reading() as session:
            return await _earlier_answer(PaymentRepository(session), command)

    async def cancel(self, command: Cancel) -> Payment:
        """The order gives up on its charge: refund it if it was taken, and if none was,
        void it, so that a charge still on its way takes nothing (see `charge`). Idempotent.

        Whichever commits first wins: the charge (then this refunds it) or the void (then
        the charge answers the void). Raises `ProcessorUnavailable` only when a capture
        must be refunded during an outage; voiding needs no processor."""
        now = datetime.now(UTC)
        for _ in range(2):  # a lost race on the order's unique payment is settled by a re-read
            try:
                async with self.db.transaction() as session:
                    repository = PaymentRepository(session)
                    payment = await repository.by_order(command.order_id)
                    if payment is None:
                        void = domain.voided(
                            str(uuid.uuid4()), command.order_id, command.amount_cents, now
                        )
                        await repository.add(void, f"void:{command.order_id}")
                        return void
                    cancelled = domain.cancel(payment, self.processor.mode, now)
                    if cancelled != payment:
                        await repository.save(cancelled)
                    return cancelled
            except IntegrityError:
                continue
        raise RuntimeError(f"cancelling the payment of {command.order_id} kept losing races")

    async def refund(self, order_id: str) -> Payment | None:
        async with self.db.transaction() as session:
            repository = PaymentRepository(session)
            payment = await repository.by_order(order_id)
            if payment is None:
                return None
            refunded = domain.refund(payment, self.processor.mode, datetime.now(UTC))
            if refunded != payment:
                await repository.save(refunded)
        return refunded

    async def find(self, order_id: str) -> Payment | None:
        async with self.db.reading() as session:
            return await PaymentRepository(session).by_order(order_id)


async def _earlier_answer(repository: PaymentRepository, command: Charge) -> Payment | None:
    recorded = await repository.recorded_for(command.idempotency_key, command.order_id)
    return domain.earlier_answer(
        recorded.under_key, recorded.of_order, command.order_id, command.amount_cents
    )
