"""Admin stock management: the one public API the gateway answers itself, by calling the
inventory service over gRPC (inventory speaks nothing else). The gateway checks the
admin role here, since inventory trusts its callers."""

from __future__ import annotations

import uuid
from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bazaar.contracts.generated import inventory_pb2
from bazaar.platform.jsontypes import JSON_INTEGER
from bazaar.platform.problems import Problem
from bazaar.platform.tokens import Principal, bearer_token, current_admin
from bazaar.services.gateway.handlers import Gateway
from bazaar.services.gateway.schemas import PRODUCT_ID_PATTERN, problem_responses

stock_admin = APIRouter(prefix="/api/admin", tags=["admin"])

RPC_TIMEOUT = 3.0
ProductId = Annotated[str, Path(min_length=1, max_length=64, pattern=PRODUCT_ID_PATTERN)]
# gRPC status -> HTTP status of the problem the client gets.
RPC_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
}


class StockAdjustment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: Annotated[
        int,
        Field(
            strict=True,
            ge=-1_000_000,
            le=1_000_000,
            description="Units to add (negative: to remove); not zero.",
            json_schema_extra={"not": {"const": 0}},
        ),
        JSON_INTEGER,
    ]

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("delta must not be zero")
        return delta


class StockLevel(BaseModel):
    product_id: str
    on_hand: int
    reserved: int
    available: int
    version: int

    @classmethod
    def of(cls, level: inventory_pb2.StockLevel) -> StockLevel:
        return cls(
            product_id=level.product_id,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            version=level.version,
        )


class StockList(BaseModel):
    items: list[StockLevel]


async def admin_caller(request: Request, gateway: Gateway) -> Principal:
    """The caller's bearer token, verified, naming an admin: 401 or 403 otherwise."""
    return await current_admin(await gateway.tokens.verify(bearer_token(request)))


AdminCaller = Annotated[Principal, Depends(admin_caller)]


def _problem(exc: grpc.aio.AioRpcError) -> Problem:
    status = RPC_STATUS.get(exc.code(), 502)
    if status >= 500:
        detail = f"inventory: {exc.code().name.lower()}"
        headers = {"Retry-After": "2"} if status == 503 else None
        return Problem(status, detail, headers=headers)
    return Problem(status, exc.details() or exc.code().name.lower())


@stock_admin.put(
    "/products/{product_id}/stock",
    response_model=StockLevel,
    summary="Add or remove units on hand (never below what is reserved)",
    # 502: inventory answered with an error it should not have; 503/504: down or slow.
    responses=problem_responses(401, 403, 404, 409, 413, 422, 502, 503, 504),
)
async def adjust_stock(
    gateway: Gateway,
    product_id: ProductId,
    body: StockAdjustment,
    admin: AdminCaller,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=64,
            pattern=r"^[!-~]+$",  # visible ASCII
            description="Send it to make a retried adjustment count once.",
        ),
    ] = None,
) -> StockLevel:
    command = inventory_pb2.AdjustStockRequest(
        product_id=product_id,
        delta=body.delta,
        # Prefixed: an admin's key can never pass for one of inventory's own (`seed:`...).
        request_id=f"admin:{idempotency_key or uuid.uuid4().hex}",
    )
    try:
        level = await gateway.inventory.stock.AdjustStock(command, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        raise _problem(exc) from exc
    return StockLevel.of(level)


@stock_admin.get(
    "/stock",
    response_model=StockList,
    summary="Stock levels of the given products (none given: every product)",
    responses=problem_responses(401, 403, 422, 502, 503, 504),
)
async def get_stock(
    gateway: Gateway,
    admin: AdminCaller,
    product_id: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64, pattern=PRODUCT_ID_PATTERN)]],
        Query(max_length=100, description="Repeat for several products."),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
) -> StockList:
    query = inventory_pb2.GetStockRequest(product_ids=product_id)
    try:
        answer = await gateway.inventory.stock.GetStock(query, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        raise _problem(exc) from exc
    return StockList(items=[StockLevel.of(level) for level in answer.levels])
