"""The order rules and every branch of the saga's state machine, without I/O."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bazaar.services.order import domain
from bazaar.services.order.domain import (
    CancelReason,
    CartLine,
    Order,
    OrderStatus,
    Outcome,
    Quote,
    Saga,
    SagaPolicy,
    Step,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=3)
QUOTES = {"tea": Quote("tea", "Green tea", 450), "mug": Quote("mug", "Blue mug", 1200)}
POLICY = SagaPolicy(
    payment_deadline=timedelta(seconds=30),
    refund_grace=timedelta(seconds=5),
    retry_initial=timedelta(seconds=1),
    retry_max=timedelta(seconds=8),
)


def an_order(**saga: Any) -> Order:
    order = domain.place_order(
        "o1", "ann", "ann@example.com", [CartLine("tea", 2), CartLine("mug", 1)], QUOTES, NOW
    )
    return replace(order, saga=replace(order.saga, **saga)) if saga else order


def at_step(step: Step, **saga: Any) -> Order:
    return an_order(step=step, **saga)


# --- placing an order -------------------------------------------------------------------


def test_an_order_is_placed_pending_at_the_quoted_prices() -> None:
    order = an_order()
    assert order.status is OrderStatus.PENDING
    assert order.reason is None
    assert [(i.product_id, i.name, i.qty, i.unit_price_cents) for i in order.items] == [
        ("tea", "Green tea", 2, 450),
        ("mug", "Blue mug", 1, 1200),
    ]
    assert order.total_cents == 2100
    assert order.saga == Saga(step=Step.RESERVE, next_attempt_at=NOW)
    assert not order.is_final


def test_lines_of_one_product_are_merged_in_cart_order() -> None:
    lines = [CartLine("mug", 1), CartLine("tea", 2), CartLine("mug", 3)]
    assert domain.merge_lines(lines) == [CartLine("mug", 4), CartLine("tea", 2)]


def test_what_cannot_be_ordered() -> None:
    with pytest.raises(domain.EmptyCart):
        domain.check_lines([])
    with pytest.raises(domain.CheckoutRejected, match="at most 100"):
        domain.check_lines([CartLine(f"p{n}", 1) for n in range(101)])
    with pytest.raises(domain.CheckoutRejected, match="quantity"):
        domain.check_lines([CartLine("tea", 0)])
    with pytest.raises(domain.CheckoutRejected, match="quantity"):
        domain.check_lines([CartLine("tea", domain.MAX_LINE_QTY + 1)])
    domain.check_lines([CartLine(f"p{n}", 1) for n in range(100)])


def test_an_unknown_product_is_named() -> None:
    with pytest.raises(domain.UnknownProducts) as raised:
        domain.place_order(
            "o1", "ann", "a@x.io", [CartLine("tea", 1), CartLine("gone", 1)], QUOTES, NOW
        )
    assert raised.value.product_ids == ["gone"]
    assert "gone" in str(raised.value)


def test_an_order_above_what_payment_accepts_is_refused() -> None:
    expensive = {"gold": Quote("gold", "Gold", domain.MAX_TOTAL_CENTS // 2 + 1)}
    with pytest.raises(domain.CheckoutRejected, match="above the limit"):
        domain.place_order("o1", "ann", "a@x.io", [CartLine("gold", 2)], expensive, NOW)


def test_order_ids_are_canonical_uuids() -> None:
    assert domain.is_order_id(str(uuid.uuid4()))
    for bad in ("", "nope", str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}"):
        assert not domain.is_order_id(bad)


# --- the saga's happy path --------------------------------------------------------------


def test_reserved_goes_to_charge_with_a_payment_deadline() -> None:
    after = domain.advance(an_order(attempts=2), Outcome.DONE, LATER, POLICY)
    assert after.saga == Saga(
        step=Step.CHARGE, next_attempt_at=LATER, attempts=0, deadline=LATER + timedelta(seconds=30)
    )
    assert after.status is OrderStatus.PENDING
    assert after.updated_at == LATER


def test_captured_goes_to_confirm() -> None:
    after = domain.advance(at_step(Step.CHARGE, deadline=LATER), Outcome.DONE, LATER, POLICY)
    assert after.saga == Saga(step=Step.CONFIRM, next_attempt_at=LATER)


def test_committed_is_paid() -> None:
    after = domain.advance(at_step(Step.CONFIRM), Outcome.DONE, LATER, POLICY)
    assert (after.status, after.reason) == (OrderStatus.PAID, None)
    assert after.saga == Saga(step=Step.DONE, next_attempt_at=None)
    assert after.is_final


# --- refusals and compensation ----------------------------------------------------------


def test_out_of_stock_cancels_at_once() -> None:
    after = domain.advance(an_order(), Outcome.REFUSED, LATER, POLICY)
    assert (after.status, after.reason) == (OrderStatus.CANCELLED, CancelReason.OUT_OF_STOCK)
    assert after.saga.step is Step.DONE


def test_declined_releases_the_stock() -> None:
    after = domain.advance(at_step(Step.CHARGE, deadline=LATER), Outcome.REFUSED, LATER, POLICY)
    assert after.saga == Saga(
        step=Step.RELEASE, next_attempt_at=LATER, reason=CancelReason.PAYMENT_DECLINED
    )
    assert after.status is OrderStatus.PENDING


def test_a_lost_reservation_refunds_then_cancels_out_of_stock() -> None:
    after = domain.advance(at_step(Step.CONFIRM), Outcome.REFUSED, LATER, POLICY)
    assert after.saga == Saga(
        step=Step.REFUND, next_attempt_at=LATER, reason=CancelReason.OUT_OF_STOCK
    )


def test_refunded_goes_on_to_release_for_the_same_reason() -> None:
    order = at_step(Step.REFUND, reason=CancelReason.PAYMENT_UNAVAILABLE)
    after = domain.advance(order, Outcome.DONE, LATER, POLICY)
    assert after.saga == Saga(
        step=Step.RELEASE, next_attempt_at=LATER, reason=CancelReason.PAYMENT_UNAVAILABLE
    )


@pytest.mark.parametrize("reason", list(CancelReason))
def test_released_is_cancelled_with_the_reason(reason: CancelReason) -> None:
    after = domain.advance(at_step(Step.RELEASE, reason=reason), Outcome.DONE, LATER, POLICY)
    assert (after.status, after.reason) == (OrderStatus.CANCELLED, reason)
    assert after.saga.next_attempt_at is None


@pytest.mark.parametrize("step", [Step.REFUND, Step.RELEASE])
def test_compensations_cannot_be_refused(step: Step) -> None:
    order = at_step(step, reason=CancelReason.PAYMENT_DECLINED)
    with pytest.raises(ValueError, match="cannot be refused"):
        domain.advance(order, Outcome.REFUSED, LATER, POLICY)


# --- which transitions are written before the saga goes on ---------------------------


def written(order: Order, outcome: Outcome) -> bool:
    return domain.needs_recording(order, domain.advance(order, outcome, LATER, POLICY), LATER)


def test_moving_forward_at_once_is_not_written() -> None:
    assert not written(an_order(), Outcome.DONE)  # reserved: charge now
    assert not written(at_step(Step.CHARGE, deadline=LATER), Outcome.DONE)  # captured: confirm


def test_final_waiting_and_compensating_transitions_are_written() -> None:
    assert written(at_step(Step.CONFIRM), Outcome.DONE)  # paid, with its event
    assert written(an_order(), Outcome.REFUSED)  # cancelled
    assert written(an_order(), Outcome.UNAVAILABLE)  # waits for the retry
    assert written(at_step(Step.CHARGE, deadline=LATER + timedelta(1)), Outcome.UNAVAILABLE)
    assert written(at_step(Step.CHARGE, deadline=LATER), Outcome.REFUSED)  # to release
    assert written(at_step(Step.CONFIRM), Outcome.REFUSED)  # to refund
    refunding = at_step(Step.REFUND, reason=CancelReason.OUT_OF_STOCK)
    assert written(refunding, Outcome.DONE)  # to release


# --- unavailable neighbours -------------------------------------------------------------


@pytest.mark.parametrize("step", [Step.RESERVE, Step.CONFIRM, Step.REFUND, Step.RELEASE])
def test_unavailable_retries_the_same_step_with_backoff(step: Step) -> None:
    order = at_step(step, attempts=2, reason=CancelReason.PAYMENT_DECLINED)
    after = domain.advance(order, Outcome.UNAVAILABLE, LATER, POLICY)
    assert after.saga.step is step
    assert after.saga.attempts == 3
    assert after.saga.next_attempt_at == LATER + timedelta(seconds=4)
    assert after.saga.reason is CancelReason.PAYMENT_DECLINED
    assert after.status is OrderStatus.PENDING


def test_charge_retries_until_its_deadline_and_not_beyond() -> None:
    deadline = LATER + timedelta(seconds=2)
    order = at_step(Step.CHARGE, attempts=3, deadline=deadline)
    after = domain.advance(order, Outcome.UNAVAILABLE, LATER, POLICY)
    assert after.saga.step is Step.CHARGE
    assert after.saga.next_attempt_at == deadline  # 8 s of backoff, cut at the deadline
    assert after.saga.deadline == deadline


def test_charge_unavailable_past_the_deadline_refunds_after_a_grace() -> None:
    order = at_step(Step.CHARGE, attempts=7, deadline=LATER)
    after = domain.advance(order, Outcome.UNAVAILABLE, LATER, POLICY)
    assert after.saga == Saga(
        step=Step.REFUND,
        next_attempt_at=LATER + timedelta(seconds=5),
        reason=CancelReason.PAYMENT_UNAVAILABLE,
    )
    assert after.status is OrderStatus.PENDING


def test_backoff_doubles_up_to_a_cap_and_jitter_spreads_it() -> None:
    delays = [POLICY.retry_delay(n).total_seconds() for n in range(6)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert POLICY.retry_delay(1, jitter=0.0) == timedelta(seconds=1)
    assert POLICY.retry_delay(1, jitter=0.5) == timedelta(seconds=1.5)
    assert POLICY.retry_delay(10_000) == timedelta(seconds=8)


def test_a_final_order_does_not_advance() -> None:
    paid = domain.advance(at_step(Step.CONFIRM), Outcome.DONE, LATER, POLICY)
    with pytest.raises(ValueError, match="over"):
        domain.advance(paid, Outcome.DONE, LATER, POLICY)


# --- events -----------------------------------------------------------------------------


def test_the_created_and_paid_events_carry_the_order() -> None:
    order = an_order()
    event_type, data = domain.created_event(order)
    assert event_type == "order.created"
    assert data == {
        "order_id": "o1",
        "user_id": "ann",
        "email": "ann@example.com",
        "items": [
            {"product_id": "tea", "name": "Green tea", "qty": 2, "unit_price_cents": 450},
            {"product_id": "mug", "name": "Blue mug", "qty": 1, "unit_price_cents": 1200},
        ],
        "total_cents": 2100,
    }
    confirming = at_step(Step.CONFIRM)
    paid = domain.advance(confirming, Outcome.DONE, LATER, POLICY)
    assert domain.event_of_change(confirming, paid) == ("order.paid", data)


def test_the_cancelled_event_carries_the_reason() -> None:
    releasing = at_step(Step.RELEASE, reason=CancelReason.PAYMENT_DECLINED)
    cancelled = domain.advance(releasing, Outcome.DONE, LATER, POLICY)
    assert domain.event_of_change(releasing, cancelled) == (
        "order.cancelled",
        {
            "order_id": "o1",
            "user_id": "ann",
            "email": "ann@example.com",
            "reason": "payment_declined",
        },
    )


def test_steps_within_pending_publish_nothing() -> None:
    order = an_order()
    assert domain.event_of_change(order, domain.advance(order, Outcome.DONE, LATER, POLICY)) is None
    retry = domain.advance(order, Outcome.UNAVAILABLE, LATER, POLICY)
    assert domain.event_of_change(order, retry) is None
