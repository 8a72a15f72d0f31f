"""The checkout's invariants as pure functions over facts read from the services'
databases (see `check.py`, which reads them): no I/O here, so every rule is tested on
facts built by hand as well as on real databases."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

# The violation kinds, in the order a report lists them.
NEGATIVE_STOCK = "negative_stock"
RESERVATIONS_MISMATCH = "reservations_mismatch"
STOCK_NOT_CONSERVED = "stock_not_conserved"
CHARGED_TWICE = "charged_twice"
PAID_WITHOUT_COMMIT = "paid_without_commit"
CANCELLED_NOT_RELEASED = "cancelled_not_released"
STUCK_PENDING = "stuck_pending"
UNPUBLISHED_OUTBOX = "unpublished_outbox"
UNSENT_MAIL = "unsent_mail"
DUPLICATE_MAIL = "duplicate_mail"
EVENT_APPLIED_TWICE = "event_applied_twice"
KINDS = (
    NEGATIVE_STOCK,
    RESERVATIONS_MISMATCH,
    STOCK_NOT_CONSERVED,
    CHARGED_TWICE,
    PAID_WITHOUT_COMMIT,
    CANCELLED_NOT_RELEASED,
    STUCK_PENDING,
    UNPUBLISHED_OUTBOX,
    UNSENT_MAIL,
    DUPLICATE_MAIL,
    EVENT_APPLIED_TWICE,
)


@dataclass(frozen=True)
class Violation:
    """One broken invariant: what kind, about what (an order, a product...), and why."""

    kind: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}"


# --- facts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StockLevel:
    product_id: str
    on_hand: int
    reserved: int


@dataclass(frozen=True)
class ReservedLine:
    order_id: str
    product_id: str
    qty: int


@dataclass(frozen=True)
class Inventory:
    stock: Sequence[StockLevel]
    reservations: Mapping[str, str]  # order id -> state
    lines: Sequence[ReservedLine]
    received: Mapping[str, int]  # product id -> sum of its adjustments (the seed included)


@dataclass(frozen=True)
class OrderFact:
    id: str
    status: str
    total_cents: int
    created_at: datetime
    saga_step: str = ""


@dataclass(frozen=True)
class PaymentFact:
    payment_id: str
    order_id: str
    amount_cents: int
    status: str


@dataclass(frozen=True)
class OutboxFact:
    service: str
    seq: int
    event_type: str
    created_at: datetime


@dataclass(frozen=True)
class QueuedMail:
    """A mail notification queued and not sent yet (mails_sent with no sent_at)."""

    event_id: str
    order_id: str
    kind: str
    attempts: int
    queued_at: datetime


@dataclass(frozen=True)
class DeliveredMail:
    file: str
    message_id: str
    recipients: tuple[str, ...]
    subject: str


# --- inventory --------------------------------------------------------------------------


def stock_violations(inventory: Inventory) -> list[Violation]:
    """negative_stock, reservations_mismatch and stock_not_conserved, per product."""
    held: Counter[str] = Counter()
    sold: Counter[str] = Counter()
    for line in inventory.lines:
        state = inventory.reservations.get(line.order_id)
        if state == "reserved":
            held[line.product_id] += line.qty
        elif state == "committed":
            sold[line.product_id] += line.qty
    found = []
    levels = {level.product_id: level for level in inventory.stock}
    for level in inventory.stock:
        if level.on_hand < 0 or level.reserved < 0 or level.reserved > level.on_hand:
            found.append(
                Violation(
                    NEGATIVE_STOCK,
                    level.product_id,
                    f"on hand {level.on_hand}, reserved {level.reserved}, "
                    f"available {level.on_hand - level.reserved}",
                )
            )
        if level.reserved != held[level.product_id]:
            found.append(
                Violation(
                    RESERVATIONS_MISMATCH,
                    level.product_id,
                    f"reserved counter {level.reserved} != {held[level.product_id]} units "
                    "in reservations still held",
                )
            )
    for product_id in sorted({*levels, *inventory.received, *sold}):
        on_hand = levels[product_id].on_hand if product_id in levels else 0
        received = inventory.received.get(product_id, 0)
        if received != on_hand + sold[product_id]:
            found.append(
                Violation(
                    STOCK_NOT_CONSERVED,
                    product_id,
                    f"received {received} (seed and adjustments) != on hand {on_hand} "
                    f"+ sold {sold[product_id]} (committed reservations)",
                )
            )
    return found


# --- orders across inventory and payment ------------------------------------------------


def order_violations(
    orders: Sequence[OrderFact],
    inventory: Inventory | None,
    payments: Sequence[PaymentFact] | None,
    now: datetime,
    pending_deadline_seconds: float,
) -> list[Violation]:
    """charged_twice, paid_without_commit, cancelled_not_released, stuck_pending.
    A fact source that is None (its database absent) skips the rules that need it."""
    found: list[Violation] = []
    if payments is not None:
        found += payment_violations(orders, payments)
    by_order = _payments_by_order(payments or ())
    for order in orders:
        reservation = inventory.reservations.get(order.id) if inventory else None
        captured = [p for p in by_order.get(order.id, ()) if p.status == "captured"]
        if order.status == "paid":
            if inventory is not None and reservation != "committed":
                found.append(
                    Violation(
                        PAID_WITHOUT_COMMIT,
                        order.id,
                        f"paid, but its reservation is {reservation or 'missing'}",
                    )
                )
            if payments is not None and not captured:
                states = [p.status for p in by_order.get(order.id, ())] or ["no payment"]
                found.append(
                    Violation(
                        PAID_WITHOUT_COMMIT,
                        order.id,
                        f"paid, but no captured payment ({', '.join(states)})",
                    )
                )
        elif order.status == "cancelled":
            if reservation in ("reserved", "committed"):
                found.append(
                    Violation(
                        CANCELLED_NOT_RELEASED,
                        order.id,
                        f"cancelled, but its reservation is {reservation}",
                    )
                )
            if captured:
                found.append(
                    Violation(
                        CANCELLED_NOT_RELEASED,
                        order.id,
                        f"cancelled, but payment {captured[0].payment_id} is captured, "
                        "not refunded",
                    )
                )
        elif (age := _overdue(order.created_at, now, pending_deadline_seconds)) is not None:
            step = f" at saga step {order.saga_step}" if order.saga_step else ""
            found.append(
                Violation(
                    STUCK_PENDING,
                    order.id,
                    f"{order.status} for {age:.0f} s{step} "
                    f"(deadline {pending_deadline_seconds:g} s)",
                )
            )
    return found


def payment_violations(
    orders: Sequence[OrderFact], payments: Sequence[PaymentFact]
) -> list[Violation]:
    """charged_twice: two captured payments for one order, or a charge of the wrong amount."""
    found = []
    totals = {order.id: order.total_cents for order in orders}
    for order_id, charges in sorted(_payments_by_order(payments).items()):
        captured = [p for p in charges if p.status == "captured"]
        if len(captured) > 1:
            found.append(
                Violation(
                    CHARGED_TWICE,
                    order_id,
                    f"{len(captured)} captured payments: "
                    + ", ".join(p.payment_id for p in captured),
                )
            )
        total = totals.get(order_id)
        for payment in charges:
            if total is not None and payment.amount_cents != total:
                found.append(
                    Violation(
                        CHARGED_TWICE,
                        order_id,
                        f"payment {payment.payment_id} ({payment.status}) is for "
                        f"{payment.amount_cents} cents, the order's total is {total}",
                    )
                )
    return found


def _payments_by_order(payments: Iterable[PaymentFact]) -> dict[str, list[PaymentFact]]:
    grouped: dict[str, list[PaymentFact]] = defaultdict(list)
    for payment in payments:
        grouped[payment.order_id].append(payment)
    return grouped


# --- messaging --------------------------------------------------------------------------


def outbox_violations(
    unpublished: Iterable[OutboxFact], now: datetime, max_age_seconds: float
) -> list[Violation]:
    return [
        Violation(
            UNPUBLISHED_OUTBOX,
            f"{row.service} outbox #{row.seq}",
            f"{row.event_type} unpublished for {age:.0f} s",
        )
        for row in unpublished
        if (age := _overdue(row.created_at, now, max_age_seconds)) is not None
    ]


def mail_violations(
    unsent: Iterable[QueuedMail], now: datetime, max_age_seconds: float
) -> list[Violation]:
    """Mails still unsent `max_age_seconds` after they were queued: the SMTP server has
    been refusing them (or the sender is stuck), and the customer is still waiting."""
    return [
        Violation(
            UNSENT_MAIL,
            f"{mail.order_id} / {mail.kind}",
            f"queued {age:.0f} s ago, unsent after {mail.attempts} attempt(s)"
            f" (event {mail.event_id})",
        )
        for mail in unsent
        if (age := _overdue(mail.queued_at, now, max_age_seconds)) is not None
    ]


def _overdue(since: datetime, now: datetime, max_age_seconds: float) -> float | None:
    """Seconds from `since` to `now`, if more than `max_age_seconds`; else None."""
    age = (now - since).total_seconds()
    return age if age > max_age_seconds else None


def duplicate_key_violations(
    kind: str, what: str, counts: Mapping[tuple[str, ...], int]
) -> list[Violation]:
    """Rows that a unique constraint should have kept single (counted by the reader)."""
    return [
        Violation(kind, " / ".join(key), f"{count} rows in {what} for one key")
        for key, count in sorted(counts.items())
        if count > 1
    ]


def maildir_violations(mails: Iterable[DeliveredMail]) -> list[Violation]:
    """Two delivered mails with one Message-ID, or with one subject to one address (every
    Bazaar mail names its order and its kind in the subject)."""
    by_id: dict[str, list[str]] = defaultdict(list)
    by_subject: dict[tuple[str, str], list[str]] = defaultdict(list)
    for mail in mails:
        if mail.message_id:
            by_id[mail.message_id].append(mail.file)
        for recipient in mail.recipients:
            by_subject[(recipient, mail.subject)].append(mail.file)
    found = [
        Violation(DUPLICATE_MAIL, message_id, f"delivered {len(files)} times: {', '.join(files)}")
        for message_id, files in sorted(by_id.items())
        if len(files) > 1
    ]
    # The same copies found by both keys are one duplicate, reported once.
    reported = {frozenset(files) for files in by_id.values()}
    found += [
        Violation(
            DUPLICATE_MAIL,
            recipient,
            f"{len(files)} mails with subject {subject!r}: {', '.join(files)}",
        )
        for (recipient, subject), files in sorted(by_subject.items())
        if len(files) > 1 and frozenset(files) not in reported
    ]
    return found


def ordered(violations: Iterable[Violation]) -> list[Violation]:
    """By kind (in KINDS order), then subject."""
    rank = {kind: number for number, kind in enumerate(KINDS)}
    return sorted(violations, key=lambda v: (rank.get(v.kind, len(rank)), v.subject))
