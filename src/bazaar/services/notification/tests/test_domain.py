import pytest

from bazaar.services.notification import domain
from bazaar.services.notification.domain import (
    CancelledOrder,
    MailKind,
    OrderLine,
    PaidOrder,
)

ORDER_ID = "0f9c2b7e-4d1a-4c55-9a8e-2f1d3c4b5a69"


def a_paid_order(*lines: OrderLine, total_cents: int = 2999) -> PaidOrder:
    lines = lines or (
        OrderLine("p-mug", "Blue Mug", 2, 1250),
        OrderLine("p-tea", "Green Tea", 1, 499),
    )
    return PaidOrder(ORDER_ID, "ada@example.com", lines, total_cents)


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (0, "$0.00"),
        (5, "$0.05"),
        (99, "$0.99"),
        (100, "$1.00"),
        (2999, "$29.99"),
        (123456789, "$1,234,567.89"),
        (-150, "-$1.50"),
    ],
)
def test_cents_are_formatted_as_dollars(cents: int, text: str) -> None:
    assert domain.format_cents(cents) == text


def test_the_short_id_is_the_first_block_of_the_uuid() -> None:
    assert domain.short_id(ORDER_ID) == "0f9c2b7e"
    assert domain.short_id("o1") == "o1"


def test_a_confirmation_lists_every_line_the_total_and_the_order_id() -> None:
    mail = domain.confirmation_mail(a_paid_order())
    assert mail.kind is MailKind.CONFIRMATION
    assert mail.to == "ada@example.com"
    assert mail.order_id == ORDER_ID
    assert mail.subject == "Your Bazaar order 0f9c2b7e is confirmed"
    assert "  2 x Blue Mug: $25.00 ($12.50 each)\n" in mail.body
    assert "  1 x Green Tea: $4.99\n" in mail.body
    assert "Total: $29.99" in mail.body
    assert f"Order id: {ORDER_ID}" in mail.body


def test_the_total_is_the_events_total_not_a_recomputation() -> None:
    mail = domain.confirmation_mail(a_paid_order(total_cents=100))
    assert "Total: $1.00" in mail.body


def test_a_product_name_cannot_break_the_layout() -> None:
    lines = (
        OrderLine("p1", "Mug\nTotal: $0.00", 1, 100),
        OrderLine("p2", "   ", 1, 200),
    )
    body = domain.confirmation_mail(a_paid_order(*lines, total_cents=300)).body
    assert "  1 x Mug Total: $0.00: $1.00\n" in body
    assert "  1 x product p2: $2.00\n" in body
    assert body.count("\nTotal: ") == 1


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("out_of_stock", "some of the items you ordered are out of stock"),
        ("payment_declined", "your payment was declined"),
        ("payment_unavailable", "we could not reach the payment provider in time"),
        ("lost_in_the_mail", "it could not be completed"),
    ],
)
def test_a_cancellation_says_why_in_plain_words(reason: str, words: str) -> None:
    mail = domain.cancellation_mail(CancelledOrder(ORDER_ID, "ada@example.com", reason))
    assert mail.kind is MailKind.CANCELLATION
    assert mail.subject == "Your Bazaar order 0f9c2b7e was cancelled"
    assert f"cancelled because {words}." in mail.body
    assert reason not in mail.body  # the code is for machines, the words for people
    assert f"Order id: {ORDER_ID}" in mail.body


def test_the_message_id_is_derived_from_the_event_id() -> None:
    sender = "Bazaar <orders@bazaar.local>"
    event_id = "7b0e4a4e-5a57-4a43-9a45-1d0b8d1f3a11"
    assert domain.message_id(event_id, sender) == f"<{event_id}@bazaar.local>"
    assert domain.message_id(event_id, sender) == domain.message_id(event_id, sender)
    assert domain.message_id("other", sender) != domain.message_id(event_id, sender)


def test_an_odd_event_id_still_gives_a_valid_message_id() -> None:
    odd = domain.message_id("a b>\r\n<c", "orders@shop.example")
    assert odd.startswith("<") and odd.endswith("@shop.example>")
    assert not any(c in odd[1:-1] for c in " <>\r\n")
    assert odd == domain.message_id("a b>\r\n<c", "orders@shop.example")
