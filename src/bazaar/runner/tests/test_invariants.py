"""The rules on facts built by hand: the edges the database tests do not reach."""

from datetime import UTC, datetime, timedelta

from bazaar.runner import invariants as rules
from bazaar.runner.invariants import (
    DeliveredMail,
    Inventory,
    OrderFact,
    OutboxFact,
    PaymentFact,
    QueuedMail,
    ReservedLine,
    StockLevel,
    Violation,
)

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_a_product_sold_or_adjusted_without_a_stock_row_is_not_conserved() -> None:
    inventory = Inventory(
        stock=[],
        reservations={"o-1": "committed"},
        lines=[ReservedLine("o-1", "ghost", 2)],
        received={"ghost": 2, "lost": 4},
    )
    found = rules.stock_violations(inventory)
    assert [(v.kind, v.subject) for v in found] == [("stock_not_conserved", "lost")]


def test_lines_of_released_and_out_of_stock_reservations_hold_nothing() -> None:
    inventory = Inventory(
        stock=[StockLevel("mug", 10, 0)],
        reservations={"o-1": "released", "o-2": "out_of_stock"},
        lines=[ReservedLine("o-1", "mug", 2), ReservedLine("o-2", "mug", 50)],
        received={"mug": 10},
    )
    assert rules.stock_violations(inventory) == []


def test_without_payment_or_inventory_facts_their_rules_are_skipped() -> None:
    paid = OrderFact("o-1", "paid", 100, NOW)
    assert rules.order_violations([paid], None, None, NOW, 120) == []
    assert [v.detail for v in rules.order_violations([paid], None, [], NOW, 120)] == [
        "paid, but no captured payment (no payment)"
    ]


def test_a_payment_for_an_order_not_seen_is_not_judged_by_its_amount() -> None:
    payment = PaymentFact("p-1", "o-unknown", 100, "captured")
    assert rules.payment_violations([], [payment]) == []


def test_pending_is_judged_by_age_against_the_deadline() -> None:
    young = OrderFact("o-1", "pending", 100, NOW - timedelta(seconds=119))
    old = OrderFact("o-2", "pending", 100, NOW - timedelta(seconds=121), saga_step="reserve")
    found = rules.order_violations([young, old], None, None, NOW, 120)
    assert found == [
        Violation("stuck_pending", "o-2", "pending for 121 s at saga step reserve (deadline 120 s)")
    ]


def test_outbox_rows_are_late_only_past_the_limit() -> None:
    rows = [
        OutboxFact("order", 1, "order.paid", NOW - timedelta(seconds=29)),
        OutboxFact("order", 2, "order.paid", NOW - timedelta(seconds=31)),
    ]
    assert [v.subject for v in rules.outbox_violations(rows, NOW, 30)] == ["order outbox #2"]


def test_queued_mails_are_late_only_past_the_limit() -> None:
    mails = [
        QueuedMail("e-1", "o-1", "confirmation", 0, NOW - timedelta(seconds=59)),
        QueuedMail("e-2", "o-2", "cancellation", 4, NOW - timedelta(seconds=61)),
    ]
    [late] = rules.mail_violations(mails, NOW, 60)
    assert late.subject == "o-2 / cancellation"
    assert "4 attempt(s)" in late.detail and "e-2" in late.detail


def test_one_mail_delivered_twice_is_one_violation_and_different_subjects_are_none() -> None:
    twice = [
        DeliveredMail("f1", "<a@x>", ("ada@example.com",), "order 1 confirmed"),
        DeliveredMail("f2", "<a@x>", ("ada@example.com",), "order 1 confirmed"),
        DeliveredMail("f3", "<b@x>", ("ada@example.com",), "order 2 confirmed"),
        DeliveredMail("f4", "<c@x>", ("bob@example.com",), "order 1 confirmed"),
    ]
    assert [v.subject for v in rules.maildir_violations(twice)] == ["<a@x>"]


def test_violations_are_ordered_by_kind_then_subject() -> None:
    shuffled = [
        Violation("duplicate_mail", "a", "-"),
        Violation("negative_stock", "b", "-"),
        Violation("negative_stock", "a", "-"),
    ]
    assert [(v.kind, v.subject) for v in rules.ordered(shuffled)] == [
        ("negative_stock", "a"),
        ("negative_stock", "b"),
        ("duplicate_mail", "a"),
    ]
    assert str(shuffled[0]) == "duplicate_mail a: -"
