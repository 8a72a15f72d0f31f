"""What the customer reads, free of I/O: the mails an order's events turn into."""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr


class MailKind(enum.StrEnum):
    CONFIRMATION = "confirmation"
    CANCELLATION = "cancellation"


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    name: str
    qty: int
    unit_price_cents: int


@dataclass(frozen=True)
class PaidOrder:
    order_id: str
    email: str
    lines: tuple[OrderLine, ...]
    total_cents: int


@dataclass(frozen=True)
class CancelledOrder:
    order_id: str
    email: str
    reason: str


@dataclass(frozen=True)
class Mail:
    """One mail to one customer about one order; at most one per (order_id, kind)."""

    kind: MailKind
    order_id: str
    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class QueuedMail:
    """A mail waiting for the sender: the event that asked for it (its Message-ID is made
    from the event's id) and how many times it has been tried, this time included."""

    event_id: str
    mail: Mail
    attempts: int
    # The W3C trace context it was queued in: its send is a span of that trace.
    trace_context: Mapping[str, str] = field(default_factory=dict)


# Why an order was cancelled, as the customer should read it ("... because <words>").
REASONS_IN_WORDS = {
    "out_of_stock": "some of the items you ordered are out of stock",
    "payment_declined": "your payment was declined",
    "payment_unavailable": "we could not reach the payment provider in time",
}
# A reason added to the contract after this service was deployed still gets a mail.
UNKNOWN_REASON = "it could not be completed"

SIGNATURE = "Thank you for shopping at Bazaar."


def format_cents(cents: int) -> str:
    """Integer cents as dollars: 123456 -> "$1,234.56"."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"


def short_id(order_id: str) -> str:
    """What a person can quote on the phone: the first block of the order's UUID."""
    return order_id[:8]


def reason_in_words(reason: str) -> str:
    return REASONS_IN_WORDS.get(reason, UNKNOWN_REASON)


def _one_line(text: str) -> str:
    # A product name is data from another service: it must not break the layout.
    return " ".join(text.split())


def _line_text(line: OrderLine) -> str:
    name = _one_line(line.name) or f"product {line.product_id}"
    total = format_cents(line.qty * line.unit_price_cents)
    each = f" ({format_cents(line.unit_price_cents)} each)" if line.qty > 1 else ""
    return f"  {line.qty} x {name}: {total}{each}"


def confirmation_mail(order: PaidOrder) -> Mail:
    body = "\n".join(
        [
            "Hello,",
            "",
            "your order is paid and confirmed. You ordered:",
            "",
            *(_line_text(line) for line in order.lines),
            "",
            f"Total: {format_cents(order.total_cents)}",
            "",
            f"Order id: {order.order_id}",
            "",
            SIGNATURE,
            "",
        ]
    )
    return Mail(
        kind=MailKind.CONFIRMATION,
        order_id=order.order_id,
        to=order.email,
        subject=f"Your Bazaar order {short_id(order.order_id)} is confirmed",
        body=body,
    )


def cancellation_mail(order: CancelledOrder) -> Mail:
    body = "\n".join(
        [
            "Hello,",
            "",
            f"we are sorry: your order was cancelled because {reason_in_words(order.reason)}.",
            "You will not be charged for it; any payment taken has been refunded.",
            "",
            f"Order id: {order.order_id}",
            "",
            SIGNATURE,
            "",
        ]
    )
    return Mail(
        kind=MailKind.CANCELLATION,
        order_id=order.order_id,
        to=order.email,
        subject=f"Your Bazaar order {short_id(order.order_id)} was cancelled",
        body=body,
    )


_DOT_ATOM = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def message_id(event_id: str, sender: str) -> str:
    """The same event always gives the same Message-ID, so a mail sent again after a
    crash (see `sender`) can be recognised as a duplicate by mail clients."""
    local = event_id if _DOT_ATOM.match(event_id) else hashlib.sha256(event_id.encode()).hexdigest()
    domain = parseaddr(sender)[1].rpartition("@")[2] or "bazaar.local"
    return f"<{local}@{domain}>"
