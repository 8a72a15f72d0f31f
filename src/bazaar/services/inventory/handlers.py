"""The use cases: one handler per command, each one unit of work that loads the
aggregates, lets the domain decide, saves, and records a `stock.changed` event per product
it changed in the same transaction (the outbox)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.contracts.events import STOCK_CHANGED, StockChanged
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, new_event
from bazaar.platform.outbox import add_to_outbox
from bazaar.services.inventory import domain
from bazaar.services.inventory.domain import (
    AdjustStock,
    CommitReservation,
    GetStock,
    ReleaseReservation,
    Reservation,
    ReservationState,
    ReserveStock,
    SeedStock,
    Stock,
    UnknownOrder,
)
from bazaar.services.inventory.store import InventoryRepository

SERVICE = "inventory"
T = TypeVar("T")


def stock_changed_event(stock: Stock) -> Envelope:
    """A product's stock levels as `contracts/events/stock.changed.json` has them."""
    data = StockChanged(
        product_id=stock.product_id,
        on_hand=stock.on_hand,
        reserved=stock.reserved,
        available=stock.available,
        version=stock.version,
    )
    return new_event(STOCK_CHANGED, SERVICE, data.model_dump(mode="json"), subject=stock.product_id)


@dataclass(frozen=True)
class SeedSummary:
    created: int
    skipped: int


class _UnitOfWork:
    """What a handler works with inside one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repo = InventoryRepository(session)

    async def save_stock(self, changed: list[Stock]) -> None:
        await self.repo.save_stock(changed)
        await add_to_outbox(self.session, *(stock_changed_event(stock) for stock in changed))


class InventoryService:
    """Stock and reservations: the use cases the gRPC servicer calls. Each change commits
    its `stock.changed` events with it; the outbox relay publishes them after the commit."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _in_transaction(self, work: Callable[[_UnitOfWork], Awaitable[T]]) -> T:
        # A unique key hit means a concurrent twin (same order_id, request_id or new
        # product) committed first; the second attempt finds its result and answers with it.
        for attempt in (1, 2):
            try:
                async with self._db.transaction() as session:
                    result = await work(_UnitOfWork(session))
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            return result
        raise AssertionError("unreachable")

    async def reserve(self, command: ReserveStock) -> Reservation:
        async def work(uow: _UnitOfWork) -> Reservation:
            earlier = await uow.repo.reservation_for_update(command.order_id)
            if earlier is not None:
                return earlier
            stock = await uow.repo.stock_for_update(line.product_id for line in command.lines)
            reservation, changed = domain.reserve(command, stock)
            await uow.repo.add_reservation(reservation)
            await uow.save_stock(changed)
            return reservation

        return await self._in_transaction(work)

    async def commit(self, command: CommitReservation) -> ReservationState:
        async def work(uow: _UnitOfWork) -> ReservationState:
            reservation = await self._reservation(uow, command.order_id)
            stock = await uow.repo.stock_for_update(line.product_id for line in reservation.lines)
            changed = reservation.commit(stock)
            if changed:
                await uow.repo.save_reservation_state(reservation)
                await uow.save_stock(changed)
            return reservation.state

        return await self._in_transaction(work)

    async def release(self, command: ReleaseReservation) -> ReservationState | None:
        """The state after release; None if the order never reserved anything."""

        async def work(uow: _UnitOfWork) -> ReservationState | None:
            reservation = await uow.repo.reservation_for_update(command.order_id)
            if reservation is None:
                return None
            stock = await uow.repo.stock_for_update(line.product_id for line in reservation.lines)
            changed = reservation.release(stock)
            if changed:
                await uow.repo.save_reservation_state(reservation)
                await uow.save_stock(changed)
            if reservation.state is ReservationState.OUT_OF_STOCK:
                return None
            return reservation.state

        return await self._in_transaction(work)

    async def adjust(self, command: AdjustStock) -> Stock:
        async def work(uow: _UnitOfWork) -> Stock:
            earlier = await uow.repo.adjustment(command.request_id)
            if earlier is not None:
                return earlier.answer_to(command)
            found = await uow.repo.stock_for_update([command.product_id])
            stock = domain.adjust(command, found.get(command.product_id))
            await uow.save_stock([stock])
            await uow.repo.add_adjustment(
                domain.Adjustment(
                    command.request_id,
                    command.product_id,
                    command.delta,
                    dataclasses.replace(stock),
                )
            )
            return stock

        return await self._in_transaction(work)

    async def stock(self, query: GetStock) -> list[Stock]:
        async with self._db.reading() as session:
            return await InventoryRepository(session).stock_levels(query.product_ids)

    async def seed(self, command: SeedStock) -> SeedSummary:
        async def work(uow: _UnitOfWork) -> SeedSummary:
            existing = await uow.repo.stock_for_update(pid for pid, _ in command.levels)
            created = domain.seed(command, list(existing))
            await uow.save_stock(created)
            for stock in created:
                await uow.repo.add_adjustment(domain.seed_adjustment(stock))
            return SeedSummary(created=len(created), skipped=len(command.levels) - len(created))

        return await self._in_transaction(work)

    @staticmethod
    async def _reservation(uow: _UnitOfWork, order_id: str) -> Reservation:
        reservation = await uow.repo.reservation_for_update(order_id)
        if reservation is None:
            raise UnknownOrder(f"order {order_id!r} has no reservation")
        return reservation
