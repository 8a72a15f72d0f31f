"""The payment rules, free of I/O: what a charge or a refund does in each processor mode."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime


class ProcessorMode(enum.StrEnum):
    OK = "ok"
    DECLINE = "decline"
    SLOW = "slow"
    OUTAGE = "outage"


class PaymentStatus(enum.StrEnum):
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"
    # The order gave up on its charge before one was taken. The record stays, so that a
    # charge still on its way (a request that outlived the order's patience) takes nothing.
    VOIDED = "voided"


class ProcessorUnavailable(Exception):
    """The simulated processor is down (outage mode): nothing was charged."""


class NotRefundable(Exception):
    pass


class IdempotencyMismatch(Exception):
    """The same Idempotency-Key came back with a different request."""


@dataclass(frozen=True)
class Payment:
    payment_id: str
    order_id: str
    amount_cents: int
    status: PaymentStatus
    created_at: datetime
    refunded_at: datetime | None = None


def charge_outcome(mode: ProcessorMode) -> PaymentStatus:
    if mode is ProcessorMode.OUTAGE:
        raise ProcessorUnavailable("the payment processor is unavailable")
    if mode is ProcessorMode.DECLINE:
        return PaymentStatus.DECLINED
    return PaymentStatus.CAPTURED


def check_replay(existing: Payment, order_id: str, amount_cents: int) -> Payment:
    """A replayed charge must be the same charge; then it gets the first answer."""
    if existing.order_id != order_id or existing.amount_cents != amount_cents:
        raise IdempotencyMismatch(
            f"Idempotency-Key already used for order {existing.order_id} "
            f"({existing.amount_cents} cents)"
        )
    return existing


def earlier_answer(
    under_key: Payment | None, of_order: Payment | None, order_id: str, amount_cents: int
) -> Payment | None:
    """What a charge request answers without charging, given what is recorded for its key
    and for its order; None if it is a new charge to make.

    A replay gets the first answer; an order whose charge was cancelled (voided) is never
    charged, it answers the void; an order charged under another key is a conflict."""
    if under_key is not None:
        return check_replay(under_key, order_id, amount_cents)
    if of_order is None:
        return None
    if of_order.status is PaymentStatus.VOIDED:
        return of_order
    raise IdempotencyMismatch(f"order {order_id} was already charged under another key")


def voided(payment_id: str, order_id: str, amount_cents: int, now: datetime) -> Payment:
    return Payment(payment_id, order_id, amount_cents, PaymentStatus.VOIDED, now)


def cancel(payment: Payment, mode: ProcessorMode, now: datetime) -> Payment:
    """The order gives up on a charge that was recorded: a capture is refunded, anything
    else (declined, refunded, voided) stays as it is."""
    if payment.status is PaymentStatus.CAPTURED:
        return refund(payment, mode, now)
    return payment


def refund(payment: Payment, mode: ProcessorMode, now: datetime) -> Payment:
    """Refunding twice is a no-op; a declined charge has nothing to refund."""
    if payment.status is PaymentStatus.REFUNDED:
        return payment
    if payment.status in (PaymentStatus.DECLINED, PaymentStatus.VOIDED):
        raise NotRefundable(
            f"payment for order {payment.order_id} was {payment.status}; nothing to refund"
        )
    if mode is ProcessorMode.OUTAGE:
        raise ProcessorUnavailable("the payment processor is unavailable")
    return replace(payment, status=PaymentStatus.REFUNDED, refunded_at=now)
