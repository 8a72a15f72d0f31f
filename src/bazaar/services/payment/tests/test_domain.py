from datetime import UTC, datetime

import pytest

from bazaar.services.payment import domain
from bazaar.services.payment.domain import Payment, PaymentStatus, ProcessorMode

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def a_payment(status: PaymentStatus = PaymentStatus.CAPTURED) -> Payment:
    return Payment("p1", "o1", 500, status, NOW)


@pytest.mark.parametrize(
    ("mode", "status"),
    [
        (ProcessorMode.OK, PaymentStatus.CAPTURED),
        (ProcessorMode.SLOW, PaymentStatus.CAPTURED),
        (ProcessorMode.DECLINE, PaymentStatus.DECLINED),
    ],
)
def test_charge_outcome_follows_the_mode(mode: ProcessorMode, status: PaymentStatus) -> None:
    assert domain.charge_outcome(mode) is status


def test_an_outage_charges_nothing() -> None:
    with pytest.raises(domain.ProcessorUnavailable):
        domain.charge_outcome(ProcessorMode.OUTAGE)


def test_a_replay_must_be_the_same_charge() -> None:
    assert domain.check_replay(a_payment(), "o1", 500) == a_payment()
    with pytest.raises(domain.IdempotencyMismatch):
        domain.check_replay(a_payment(), "o1", 501)


def test_a_new_charge_has_no_earlier_answer() -> None:
    assert domain.earlier_answer(None, None, "o1", 500) is None


def test_a_replay_answers_its_first_charge_whatever_the_order_holds() -> None:
    void = a_payment(PaymentStatus.VOIDED)
    assert domain.earlier_answer(a_payment(), void, "o1", 500) == a_payment()
    with pytest.raises(domain.IdempotencyMismatch):
        domain.earlier_answer(a_payment(), None, "o1", 999)


def test_a_voided_order_answers_the_void_and_a_charged_one_is_a_conflict() -> None:
    void = a_payment(PaymentStatus.VOIDED)
    assert domain.earlier_answer(None, void, "o1", 500) == void
    with pytest.raises(domain.IdempotencyMismatch):
        domain.earlier_answer(None, a_payment(), "o1", 500)


def test_refund_is_idempotent_and_refuses_declined_charges() -> None:
    refunded = domain.refund(a_payment(), ProcessorMode.OK, NOW)
    assert refunded.status is PaymentStatus.REFUNDED
    assert domain.refund(refunded, ProcessorMode.OUTAGE, NOW) == refunded
    with pytest.raises(domain.NotRefundable):
        domain.refund(a_payment(PaymentStatus.DECLINED), ProcessorMode.OK, NOW)


def test_cancelling_refunds_a_capture_and_leaves_the_rest() -> None:
    assert domain.cancel(a_payment(), ProcessorMode.OK, NOW).status is PaymentStatus.REFUNDED
    for status in (PaymentStatus.DECLINED, PaymentStatus.REFUNDED, PaymentStatus.VOIDED):
        assert domain.cancel(a_payment(status), ProcessorMode.OUTAGE, NOW) == a_payment(status)
    with pytest.raises(domain.ProcessorUnavailable):
        domain.cancel(a_payment(), ProcessorMode.OUTAGE, NOW)


def test_a_void_has_nothing_to_refund() -> None:
    void = domain.voided("p2", "o1", 500, NOW)
    assert (void.status, void.amount_cents) == (PaymentStatus.VOIDED, 500)
    with pytest.raises(domain.NotRefundable):
        domain.refund(void, ProcessorMode.OK, NOW)
