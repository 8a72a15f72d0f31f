"""The order rules, free of I/O: placing an order, and the checkout saga's state machine.

The saga is a list of steps kept in the order itself (`Saga`). The saga runner performs
the current step against a neighbour and reports one `Outcome`; `advance` says what
follows. Everything here is a pure function of its arguments (the clock included), so
every branch is unit-tested without a database or a network.

    RESERVE --done--> CHARGE --done--> CONFIRM --done--> paid
       |                 |                |
    refused           refused          refused (the reservation is gone)
       |                 |                |
    cancelled        RELEASE <-- REFUND <-+
    (out_of_stock)       |          ^
                         |          | unavailable past the payment deadline
                     cancelled      +-- CHARGE
                     (reason)

An `unavailable` outcome (the neighbour did not answer) keeps the step and schedules a
retry with exponential backoff; only CHARGE gives up, at its deadline.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bazaar.contracts.events import (
    ORDER_CANCELLED,
    ORDER_CREATED,
    ORDER_PAID,
    OrderCancelled,
    OrderCreated,
    OrderedItem,
    OrderPaid,
)
from bazaar.platform.backoff import backoff

# The catalog quotes and the inventory reserves at most 100 products at once.
MAX_LINES = 100
MAX_LINE_QTY = 10_000
# The payment service charges at most this much in one go.
MAX_TOTAL_CENTS = 100_000_000


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    CANCELLED = "cancelled"


class CancelReason(enum.StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_UNAVAILABLE = "payment_unavailable"


class Step(enum.StrEnum):
    RESERVE = "reserve"  # hold stock (inventory Reserve)
    CHARGE = "charge"  # take the money (payment)
    CONFIRM = "confirm"  # turn the reservation into a sale (inventory Commit), then paid
    REFUND = "refund"  # compensation: give back a charge that may exist
    RELEASE = "release"  # compensation: give the reserved stock back, then cancelled
    DONE = "done"


class Outcome(enum.StrEnum):
    """What performing a step came to."""

    DONE = "done"  # reserved / captured / committed / refunded / released
    REFUSED = "refused"  # out of stock / declined / the reservation is no longer held
    UNAVAILABLE = "unavailable"  # no answer (down, timeout, breaker open): try again later


class CheckoutRejected(Exception):
    """The cart cannot become an order; the message says why (a 422 for the caller)."""


class EmptyCart(CheckoutRejected):
    def __init__(self) -> None:
        super().__init__("the cart is empty: add products before checking out")


class UnknownProducts(CheckoutRejected):
    def __init__(self, product_ids: Sequence[str]) -> None:
        self.product_ids = list(product_ids)
        super().__init__(
            "these products are no longer sold: "
            + ", ".join(self.product_ids)
            + "; remove them from the cart"
        )


@dataclass(frozen=True)
class CartLine:
    product_id: str
    qty: int


@dataclass(frozen=True)
class Quote:
    product_id: str
    name: str
    price_cents: int


@dataclass(frozen=True)
class LineItem:
    product_id: str
    name: str
    qty: int
    unit_price_cents: int

    @property
    def total_cents(self) -> int:
        return self.qty * self.unit_price_cents


@dataclass(frozen=True)
class Saga:
    """Where an order's saga stands. `reason` is what a compensation is for."""

    step: Step
    next_attempt_at: datetime | None
    attempts: int = 0
    deadline: datetime | None = None
    reason: CancelReason | None = None


@dataclass(frozen=True)
class Order:
    id: str
    user_id: str
    email: str
    items: tuple[LineItem, ...]
    total_cents: int
    status: OrderStatus
    reason: CancelReason | None
    created_at: datetime
    updated_at: datetime
    saga: Saga
    # Optimistic concurrency: every write checks and bumps it (see the store).
    version: int = 0

    @property
    def is_final(self) -> bool:
        return self.status is not OrderStatus.PENDING


@dataclass(frozen=True)
class SagaPolicy:
    """The timing rules of the saga, from settings."""

    payment_deadline: timedelta
    # Wait this long after giving up on payment before asking for a refund, so that a
    # charge still in flight at the processor has landed and gets refunded too.
    refund_grace: timedelta
    retry_initial: timedelta
    retry_max: timedelta

    def retry_delay(self, attempts: int, jitter: float = 1.0) -> timedelta:
        """Exponential backoff, capped; `jitter` in [0, 1] spreads retries over half of it."""
        seconds = backoff(
            attempts,
            initial=self.retry_initial.total_seconds(),
            maximum=self.retry_max.total_seconds(),
            jitter=jitter,
        )
        return timedelta(seconds=seconds)


def is_order_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def merge_lines(lines: Iterable[CartLine]) -> list[CartLine]:
    """One line per product (inventory reserves each product once), in cart order."""
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.product_id] = merged.get(line.product_id, 0) + line.qty
    return [CartLine(product_id, qty) for product_id, qty in merged.items()]


def check_lines(lines: Sequence[CartLine]) -> None:
    """What a cart must be before it is priced."""
    if not lines:
        raise EmptyCart()
    if len(lines) > MAX_LINES:
        raise CheckoutRejected(
            f"an order holds at most {MAX_LINES} different products; the cart has {len(lines)}"
        )
    for line in lines:
        if not 1 <= line.qty <= MAX_LINE_QTY:
            raise CheckoutRejected(
                f"quantity of {line.product_id} must be 1..{MAX_LINE_QTY}, not {line.qty}"
            )


def place_order(
    order_id: str,
    user_id: str,
    email: str,
    lines: Sequence[CartLine],
    quotes: Mapping[str, Quote],
    now: datetime,
) -> Order:
    """A new pending order at today's prices; its saga starts with reserving stock."""
    check_lines(lines)
    missing = [line.product_id for line in lines if line.product_id not in quotes]
    if missing:
        raise UnknownProducts(missing)
    items = tuple(
        LineItem(
            product_id=line.product_id,
            name=quotes[line.product_id].name,
            qty=line.qty,
            unit_price_cents=quotes[line.product_id].price_cents,
        )
        for line in lines
    )
    total = sum(item.total_cents for item in items)
    if total > MAX_TOTAL_CENTS:
        raise CheckoutRejected(
            f"the order total ({total} cents) is above the limit of {MAX_TOTAL_CENTS} cents"
        )
    return Order(
        id=order_id,
        user_id=user_id,
        email=email,
        items=items,
        total_cents=total,
        status=OrderStatus.PENDING,
        reason=None,
        created_at=now,
        updated_at=now,
        saga=Saga(step=Step.RESERVE, next_attempt_at=now),
    )


# --- the saga's state machine ---------------------------------------------------------


def advance(
    order: Order, outcome: Outcome, now: datetime, policy: SagaPolicy, jitter: float = 1.0
) -> Order:
    """The order after its current step came to `outcome` at `now`."""
    if order.is_final:
        raise ValueError(f"order {order.id} is {order.status}: its saga is over")
    step = order.saga.step
    if outcome is Outcome.UNAVAILABLE:
        return _after_unavailable(order, now, policy, jitter)
    if step is Step.RESERVE:
        if outcome is Outcome.DONE:
            return _goto(order, Step.CHARGE, now, deadline=now + policy.payment_deadline)
        # Out of stock reserves nothing (all lines or none): nothing to give back.
        return _cancelled(order, CancelReason.OUT_OF_STOCK, now)
    if step is Step.CHARGE:
        if outcome is Outcome.DONE:
            return _goto(order, Step.CONFIRM, now)
        return _goto(order, Step.RELEASE, now, reason=CancelReason.PAYMENT_DECLINED)
    if step is Step.CONFIRM:
        if outcome is Outcome.DONE:
            return _paid(order, now)
        # The stock is no longer held for us (should not happen): undo the charge.
        return _goto(order, Step.REFUND, now, reason=CancelReason.OUT_OF_STOCK)
    if outcome is Outcome.REFUSED:
        raise ValueError(f"a {step} step cannot be refused: it only succeeds or waits")
    if step is Step.REFUND:
        return _goto(order, Step.RELEASE, now, reason=order.saga.reason)
    if step is Step.RELEASE:
        assert order.saga.reason is not None, "a release always has a reason"
        return _cancelled(order, order.saga.reason, now)
    raise ValueError(f"order {order.id} has no step to advance ({step})")


def needs_recording(before: Order, after: Order, now: datetime) -> bool:
    """Whether the transition from `before` to `after` must be written before the saga
    goes on (it always is once the saga stops or waits).

    Moving forward to a step that is due now need not be: should the process die before
    the next write, the runner that resumes the order redoes the steps from the last one
    written, and redoing them is harmless: Reserve answers its first outcome again, and a
    charge keyed by the order id is never taken twice (nothing cancels it before a
    compensation step, which is written). Everything else is written at once: an order
    that waits (its retry time and payment deadline), that becomes final (with its event),
    or that starts compensating (after a refund, a charge would not answer as before).
    """
    due = after.saga.next_attempt_at
    moves_forward_now = (
        after.status is OrderStatus.PENDING
        and after.saga.step in _FORWARD_STEPS
        and after.saga.step is not before.saga.step
        and due is not None
        and due <= now
    )
    return not moves_forward_now


# The steps reached only when the step before them is done (RESERVE -> CHARGE -> CONFIRM).
_FORWARD_STEPS = frozenset({Step.CHARGE, Step.CONFIRM})


def _after_unavailable(order: Order, now: datetime, policy: SagaPolicy, jitter: float) -> Order:
    saga = order.saga
    deadline = saga.deadline
    if saga.step is Step.CHARGE and deadline is not None and now >= deadline:
        # A charge may have gone through without our hearing of it: refund, then release.
        return _goto(
            order,
            Step.REFUND,
            now,
            reason=CancelReason.PAYMENT_UNAVAILABLE,
            at=now + policy.refund_grace,
        )
    retry_at = now + policy.retry_delay(saga.attempts, jitter)
    if saga.step is Step.CHARGE and deadline is not None:
        retry_at = min(retry_at, deadline)  # give up on time, not a backoff later
    return replace(order, saga=replace(saga, attempts=saga.attempts + 1, next_attempt_at=retry_at))


def _goto(
    order: Order,
    step: Step,
    now: datetime,
    *,
    deadline: datetime | None = None,
    reason: CancelReason | None = None,
    at: datetime | None = None,
) -> Order:
    saga = Saga(step=step, next_attempt_at=at or now, deadline=deadline, reason=reason)
    return replace(order, saga=saga, updated_at=now)


def _paid(order: Order, now: datetime) -> Order:
    return replace(
        order,
        status=OrderStatus.PAID,
        saga=Saga(step=Step.DONE, next_attempt_at=None),
        updated_at=now,
    )


def _cancelled(order: Order, reason: CancelReason, now: datetime) -> Order:
    return replace(
        order,
        status=OrderStatus.CANCELLED,
        reason=reason,
        saga=Saga(step=Step.DONE, next_attempt_at=None),
        updated_at=now,
    )


# --- events (the data of contracts/events/order.*.json) --------------------------------


def created_event(order: Order) -> tuple[str, dict[str, Any]]:
    return ORDER_CREATED, _placed(OrderCreated, order)


def event_of_change(before: Order, after: Order) -> tuple[str, dict[str, Any]] | None:
    """The event a transition publishes: one when the order becomes final, else none."""
    if before.status is after.status:
        return None
    if after.status is OrderStatus.PAID:
        return ORDER_PAID, _placed(OrderPaid, after)
    if after.status is OrderStatus.CANCELLED:
        assert after.reason is not None
        cancelled = OrderCancelled(
            order_id=after.id, user_id=after.user_id, email=after.email, reason=after.reason.value
        )
        return ORDER_CANCELLED, cancelled.model_dump(mode="json")
    return None


def _placed(contract: type[OrderCreated], order: Order) -> dict[str, Any]:
    """The order as `order.created` and `order.paid` carry it."""
    placed = contract(
        order_id=order.id,
        user_id=order.user_id,
        email=order.email,
        items=[OrderedItem(**asdict(item)) for item in order.items],
        total_cents=order.total_cents,
    )
    return placed.model_dump(mode="json")
