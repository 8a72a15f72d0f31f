"""Entrypoints: the gRPC servicer of `contracts/inventory.proto`, and the small HTTP ops
app (/healthz, /readyz, /metrics). Each RPC translates request -> command -> handler ->
response; every refusal becomes a gRPC status with a clear message."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from bazaar.contracts.generated import inventory_pb2, inventory_pb2_grpc
from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.logs import get_logger
from bazaar.platform.web import create_app, standard_readiness
from bazaar.services.inventory.domain import (
    AdjustStock,
    CommitReservation,
    GetStock,
    InvalidRequest,
    InventoryError,
    KeyReused,
    Line,
    ReleaseReservation,
    Reservation,
    ReservationState,
    ReserveStock,
    Stock,
    UnknownOrder,
    UnknownProduct,
    WrongState,
)
from bazaar.services.inventory.handlers import InventoryService

log = get_logger(__name__)

SERVICE_FULL_NAME = inventory_pb2.DESCRIPTOR.services_by_name["Inventory"].full_name

Status = inventory_pb2.ReservationStatus
STATUS_OF: dict[ReservationState | None, inventory_pb2.ReservationStatus.State] = {
    ReservationState.RESERVED: Status.RESERVED,
    ReservationState.COMMITTED: Status.COMMITTED,
    ReservationState.RELEASED: Status.RELEASED,
    ReservationState.OUT_OF_STOCK: Status.NONE,
    None: Status.NONE,
}

CODE_OF: dict[type[InventoryError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    UnknownOrder: grpc.StatusCode.NOT_FOUND,
    UnknownProduct: grpc.StatusCode.NOT_FOUND,
    WrongState: grpc.StatusCode.FAILED_PRECONDITION,
    KeyReused: grpc.StatusCode.ALREADY_EXISTS,
}

Servicer = TypeVar("Servicer")
Request = TypeVar("Request")
Response = TypeVar("Response")
Method = Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]]


def answers_errors(
    method: Method[Servicer, Request, Response],
) -> Method[Servicer, Request, Response]:
    """Turn what a handler raises into a gRPC status; nothing escapes as a crash."""

    @functools.wraps(method)
    async def translated(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext
    ) -> Response:
        try:
            return await method(self, request, context)
        except InventoryError as exc:
            code, detail = CODE_OF.get(type(exc), grpc.StatusCode.FAILED_PRECONDITION), str(exc)
        except DBAPIError as exc:
            # A busy or unreachable database: transient, and callers retry UNAVAILABLE.
            log.warning("database unavailable", method=method.__name__, error=str(exc.orig))
            code, detail = grpc.StatusCode.UNAVAILABLE, "the inventory database is busy; retry"
        except Exception:
            log.exception("unhandled error", method=method.__name__)
            code, detail = grpc.StatusCode.INTERNAL, "internal error; see the inventory log"
        await context.abort(code, detail)
        raise AssertionError("context.abort raises")

    return translated


class InventoryServicer(inventory_pb2_grpc.InventoryServicer):
    def __init__(self, service: InventoryService) -> None:
        self._service = service

    @answers_errors
    async def Reserve(
        self, request: inventory_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ReserveResponse:
        lines = tuple(Line(line.product_id, line.qty) for line in request.lines)
        reservation = await self._service.reserve(ReserveStock(request.order_id, lines))
        return reserve_response(reservation)

    @answers_errors
    async def Commit(
        self, request: inventory_pb2.OrderRef, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ReservationStatus:
        state = await self._service.commit(CommitReservation(request.order_id))
        return Status(order_id=request.order_id, state=STATUS_OF[state])

    @answers_errors
    async def Release(
        self, request: inventory_pb2.OrderRef, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ReservationStatus:
        state = await self._service.release(ReleaseReservation(request.order_id))
        return Status(order_id=request.order_id, state=STATUS_OF[state])

    @answers_errors
    async def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.GetStockResponse:
        levels = await self._service.stock(GetStock(tuple(request.product_ids)))
        return inventory_pb2.GetStockResponse(levels=[stock_level(stock) for stock in levels])

    @answers_errors
    async def AdjustStock(
        self, request: inventory_pb2.AdjustStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.StockLevel:
        command = AdjustStock(request.product_id, request.delta, request.request_id)
        return stock_level(await self._service.adjust(command))


def reserve_response(reservation: Reservation) -> inventory_pb2.ReserveResponse:
    if reservation.state is ReservationState.OUT_OF_STOCK:
        return inventory_pb2.ReserveResponse(
            outcome=inventory_pb2.ReserveResponse.OUT_OF_STOCK,
            short_product_ids=list(reservation.short_product_ids),
        )
    # A reservation committed or released since still answers Reserve with RESERVED:
    # that was the outcome of the Reserve being retried.
    return inventory_pb2.ReserveResponse(outcome=inventory_pb2.ReserveResponse.RESERVED)


def stock_level(stock: Stock) -> inventory_pb2.StockLevel:
    return inventory_pb2.StockLevel(
        product_id=stock.product_id,
        on_hand=stock.on_hand,
        reserved=stock.reserved,
        available=stock.available,
        version=stock.version,
    )


def create_ops_app(db: Database, bus: Bus) -> FastAPI:
    """/healthz, /readyz (database and broker) and /metrics; nothing else over HTTP."""
    return create_app(
        "inventory",
        readiness=standard_readiness(db, bus),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
