"""HTTP entrypoints: turn a request into a call of the service layer, and back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field

from bazaar.platform.dependencies import uses
from bazaar.platform.problems import Conflict, NotFound, Problem
from bazaar.services.payment import domain
from bazaar.services.payment.domain import Payment, PaymentStatus, ProcessorMode
from bazaar.services.payment.handlers import Cancel, Charge, PaymentService

router = APIRouter(prefix="/internal", tags=["payments"])

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: Id
    amount_cents: int = Field(ge=0, le=100_000_000)


class PaymentPublic(BaseModel):
    payment_id: str
    order_id: str
    amount_cents: int
    status: PaymentStatus
    created_at: datetime
    refunded_at: datetime | None

    @classmethod
    def of(cls, payment: Payment) -> PaymentPublic:
        return cls(**payment.__dict__)


class ModePublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: ProcessorMode


Payments = Annotated[PaymentService, uses(PaymentService)]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


def _unavailable(exc: Exception) -> Problem:
    return Problem(503, str(exc), headers={"Retry-After": "1"})


@router.post("/payments", status_code=201, response_model=PaymentPublic)
async def create_payment(
    body: PaymentCreate, key: IdempotencyKey, payments: Payments
) -> PaymentPublic:
    try:
        payment = await payments.charge(Charge(body.order_id, body.amount_cents, key))
    except domain.ProcessorUnavailable as exc:
        raise _unavailable(exc) from exc
    except domain.IdempotencyMismatch as exc:
        raise Conflict(str(exc)) from exc
    return PaymentPublic.of(payment)


@router.post("/payments/{order_id}/refund", response_model=PaymentPublic)
async def refund_payment(order_id: Id, payments: Payments) -> PaymentPublic:
    try:
        payment = await payments.refund(order_id)
    except domain.ProcessorUnavailable as exc:
        raise _unavailable(exc) from exc
    except domain.NotRefundable as exc:
        raise Conflict(str(exc)) from exc
    if payment is None:
        raise NotFound(f"no payment for order {order_id}")
    return PaymentPublic.of(payment)


class PaymentCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: int = Field(ge=0, le=100_000_000)


@router.post("/payments/{order_id}/cancel", response_model=PaymentPublic)
async def cancel_payment(order_id: Id, body: PaymentCancel, payments: Payments) -> PaymentPublic:
    """The order gives up on its charge: a capture is refunded; a charge not taken yet is
    voided, and a request for it still on its way takes nothing."""
    try:
        payment = await payments.cancel(Cancel(order_id, body.amount_cents))
    except domain.ProcessorUnavailable as exc:
        raise _unavailable(exc) from exc
    return PaymentPublic.of(payment)


@router.get("/payments/{order_id}", response_model=PaymentPublic)
async def get_payment(order_id: Id, payments: Payments) -> PaymentPublic:
    payment = await payments.find(order_id)
    if payment is None:
        raise NotFound(f"no payment for order {order_id}")
    return PaymentPublic.of(payment)


@router.get("/mode", response_model=ModePublic)
async def get_mode(payments: Payments) -> ModePublic:
    return ModePublic(mode=payments.processor.mode)


@router.put("/mode", response_model=ModePublic)
async def set_mode(body: ModePublic, payments: Payments) -> ModePublic:
    payments.processor.mode = body.mode
    return ModePublic(mode=payments.processor.mode)
