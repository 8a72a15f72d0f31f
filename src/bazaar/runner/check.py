"""`bazaar check`: prove the checkout's invariants on the data the services left behind.

    from bazaar.runner.check import find_violations, Violation
    violations = find_violations(home)            # [] when every invariant holds

It reads each service's own database (`<home>/<service>.db`, or a URL per service for a
PostgreSQL deployment) read-only, with plain SQLAlchemy, one snapshot per database, and
never through service code: the tables and columns it relies on are declared by name in
`checked_tables.py`. Databases are read in saga order (order, then payment, inventory,
notification), so a check that runs beside a live platform sees every step an order's
status claims (an order is marked paid only after its charge and its commit).

What it reports (`Violation.kind`):

- negative_stock: a product's on_hand or available (on_hand - reserved) below zero, or
  reserved below zero (inventory.stock).
- reservations_mismatch: a product's reserved counter differs from the units of its
  reservation lines whose reservation is still `reserved`.
- stock_not_conserved: what the warehouse received (the sum of the product's
  stock_adjustments deltas, the seed's "seed:<product>" row included) differs from
  on_hand + the units of its `committed` reservation lines (sold).
- charged_twice: more than one captured payment for one order, or a payment whose amount
  differs from the order's total_cents.
- paid_without_commit: a `paid` order whose reservation is not `committed`, or that has no
  captured payment.
- cancelled_not_released: a `cancelled` order whose reservation is still `reserved` or
  `committed`, or whose payment is still `captured` (not refunded).
- stuck_pending: an order still `pending` longer than `pending_deadline_seconds` after it
  was created.
- unpublished_outbox: an outbox row unpublished 30 s after it was written, in any service
  database that has an outbox.
- unsent_mail: a mail queued (mails_sent, sent_at NULL) and still unsent 120 s after it
  was queued: the SMTP server refuses it, or the sender is stuck.
- duplicate_mail: two mails_sent rows for one (order_id, kind) (a unique constraint should
  make it impossible); in the maildir (`<home>/mail`), two delivered mails with one
  Message-ID, or with one subject to one address.
- event_applied_twice: two inbox rows for one (consumer, event_id) in any database (the
  primary key should make it impossible).

What it cannot see: an event applied twice under two different event ids. The cart
keeps no record of which orders removed its lines, so a second `order.created` for one
order (a producer bug, not a redelivery) would go unnoticed; catalog's stock read model
ignores a replayed `stock.changed` by version, leaving no trace either. Mails are the one
effect that is checked twice over (mails_sent and the maildir).

A service whose database is absent (or not migrated) is skipped, with the checks that
need it; `Report.skipped` says which. No database at all is an error (`NothingToCheck`).
"""

from __future__ import annotations

import email.policy
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, func, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from bazaar.runner import checked_tables as t
from bazaar.runner import invariants
from bazaar.runner.invariants import (
    DUPLICATE_MAIL,
    EVENT_APPLIED_TWICE,
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
from bazaar.runner.topology import SERVICES

__all__ = ["NothingToCheck", "Report", "Violation", "find_violations", "inspect_platform"]

PENDING_DEADLINE_SECONDS = 120.0
OUTBOX_DEADLINE_SECONDS = 30.0
# Longer than a mail waits when its sender died holding it (6 x the default 10 s SMTP
# timeout, notification's HOLD_TIMEOUTS) and than a short SMTP outage's retries.
MAIL_DEADLINE_SECONDS = 120.0
# Saga order first (see the module's docstring), then whoever else has an outbox or inbox.
_SAGA_ORDER = ("order", "payment", "inventory", "notification")
DATABASE_SERVICES: tuple[str, ...] = tuple(
    sorted(
        (s.name for s in SERVICES if s.database),
        key=lambda name: _SAGA_ORDER.index(name) if name in _SAGA_ORDER else len(_SAGA_ORDER),
    )
)


class NothingToCheck(FileNotFoundError):
    """No service database was found: a wrong home, or a platform never started."""


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    orders: Counter[str] = field(default_factory=Counter)  # by status
    products: int = 0
    mails: int | None = None  # delivered mails read, None without a maildir
    read: list[str] = field(default_factory=list)  # services whose databases were read
    skipped: dict[str, str] = field(default_factory=dict)  # service -> why

    @property
    def summary(self) -> str:
        statuses = ", ".join(
            f"{self.orders[status]} {status}" for status in ("paid", "cancelled", "pending")
        )
        others = sum(n for s, n in self.orders.items() if s not in ("paid", "cancelled", "pending"))
        extra = f", {others} other" if others else ""
        return (
            f"{sum(self.orders.values())} orders: {statuses}{extra}; "
            f"{self.products} products checked"
        )


def find_violations(
    home: Path,
    *,
    pending_deadline_seconds: float = PENDING_DEADLINE_SECONDS,
    urls: Mapping[str, str] | None = None,
) -> list[Violation]:
    """Every broken invariant of the platform whose data is in `home` (or at `urls`,
    service name -> database URL, for the services not kept under `home`)."""
    report = inspect_platform(home, pending_deadline_seconds=pending_deadline_seconds, urls=urls)
    return report.violations


def inspect_platform(
    home: Path,
    *,
    pending_deadline_seconds: float = PENDING_DEADLINE_SECONDS,
    urls: Mapping[str, str] | None = None,
    outbox_deadline_seconds: float = OUTBOX_DEADLINE_SECONDS,
    mail_deadline_seconds: float = MAIL_DEADLINE_SECONDS,
    now: datetime | None = None,
) -> Report:
    """The violations and what was checked, for `bazaar check`'s summary."""
    report = Report()
    facts = _Facts()
    for service in DATABASE_SERVICES:
        url = database_url(home, service, urls)
        if url is None:
            report.skipped[service] = "no database"
            continue
        with snapshot(url) as connection:
            required = t.REQUIRED.get(service, ())
            missing = [table.name for table in required if not _has(connection, table.name)]
            if missing:
                report.skipped[service] = f"not migrated (no {', '.join(missing)})"
                continue
            facts.read(service, connection)
        report.read.append(service)
    if not report.read:
        raise NothingToCheck(f"no service database under {home}: is it a Bazaar home?")
    maildir = home / "mail"
    if maildir.is_dir():
        facts.mails = read_maildir(maildir)
    now = now or datetime.now(UTC)
    report.violations = invariants.ordered(
        facts.violations(
            now,
            pending_deadline=pending_deadline_seconds,
            outbox_deadline=outbox_deadline_seconds,
            mail_deadline=mail_deadline_seconds,
        )
    )
    report.orders = Counter(order.status for order in facts.orders)
    report.products = len(facts.inventory.stock) if facts.inventory else 0
    report.mails = len(facts.mails) if facts.mails is not None else None
    return report


@dataclass
class _Facts:
    """What was read from every database, until the rules judge it."""

    orders: list[OrderFact] = field(default_factory=list)
    payments: list[PaymentFact] | None = None
    inventory: Inventory | None = None
    unpublished: list[OutboxFact] = field(default_factory=list)
    unsent: list[QueuedMail] = field(default_factory=list)
    duplicates: list[Violation] = field(default_factory=list)
    mails: list[DeliveredMail] | None = None

    def read(self, service: str, connection: Connection) -> None:
        if service == "order":
            self.orders = read_orders(connection)
        elif service == "payment":
            self.payments = read_payments(connection)
        elif service == "inventory":
            self.inventory = read_inventory(connection)
        elif service == "notification":
            self.duplicates += invariants.duplicate_key_violations(
                DUPLICATE_MAIL,
                "notification mails_sent",
                count_keys(connection, t.mails_sent.c.order_id, t.mails_sent.c.kind),
            )
            self.unsent = read_unsent(connection)
        if _has(connection, t.outbox.name):
            self.unpublished += read_unpublished(connection, service)
        if _has(connection, t.inbox.name):
            self.duplicates += invariants.duplicate_key_violations(
                EVENT_APPLIED_TWICE,
                f"{service} inbox",
                count_keys(connection, t.inbox.c.consumer, t.inbox.c.event_id),
            )

    def violations(
        self,
        now: datetime,
        *,
        pending_deadline: float,
        outbox_deadline: float,
        mail_deadline: float,
    ) -> list[Violation]:
        found = list(self.duplicates)
        if self.inventory is not None:
            found += invariants.stock_violations(self.inventory)
        found += invariants.order_violations(
            self.orders, self.inventory, self.payments, now, pending_deadline
        )
        found += invariants.outbox_violations(self.unpublished, now, outbox_deadline)
        found += invariants.mail_violations(self.unsent, now, mail_deadline)
        if self.mails is not None:
            found += invariants.maildir_violations(self.mails)
        return found


# --- where the databases are, and reading them read-only ---------------------------------


def database_url(home: Path, service: str, urls: Mapping[str, str] | None) -> str | None:
    """The service's database URL, or None if it has no database to read."""
    if urls and service in urls:
        url = urls[service]
        path = _sqlite_path(make_url(url))
        return None if path is not None and not path.exists() else url
    path = home / f"{service}.db"
    return f"sqlite:///{path.resolve()}" if path.exists() else None


def _sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def read_only_url(url: str) -> URL:
    """A synchronous driver for the service's (async) URL; SQLite files open read-only."""
    parsed = make_url(url)
    path = _sqlite_path(parsed)
    if path is not None:
        return make_url(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


@contextmanager
def snapshot(url: str) -> Iterator[Connection]:
    """One consistent, read-only view of a database."""
    target = read_only_url(url)
    engine = create_engine(target, poolclass=NullPool)
    if target.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_no_implicit_transactions)
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
        options: dict[str, Any] = {}
    else:
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**options)
            with connection.begin():
                yield connection
    finally:
        engine.dispose()


def _sqlite_no_implicit_transactions(dbapi_connection: Any, _: Any) -> None:
    # The driver would begin only at a write, so each SELECT would see a newer commit;
    # BEGIN ourselves (see snapshot) and every read shares one snapshot.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA busy_timeout=10000")


def _has(connection: Connection, table: str) -> bool:
    return bool(inspect(connection).has_table(table))


def read_orders(connection: Connection) -> list[OrderFact]:
    o = t.orders.c
    rows = connection.execute(select(o.id, o.status, o.total_cents, o.created_at, o.saga_step))
    return [OrderFact(*row) for row in rows]


def read_payments(connection: Connection) -> list[PaymentFact]:
    p = t.payments.c
    rows = connection.execute(select(p.payment_id, p.order_id, p.amount_cents, p.status))
    return [PaymentFact(*row) for row in rows]


def read_inventory(connection: Connection) -> Inventory:
    s, r, line, a = t.stock.c, t.reservations.c, t.reservation_lines.c, t.stock_adjustments.c
    stock = [
        StockLevel(*row) for row in connection.execute(select(s.product_id, s.on_hand, s.reserved))
    ]
    reservations = {
        order_id: state for order_id, state in connection.execute(select(r.order_id, r.state))
    }
    lines = [
        ReservedLine(*row)
        for row in connection.execute(select(line.order_id, line.product_id, line.qty))
    ]
    received = connection.execute(select(a.product_id, func.sum(a.delta)).group_by(a.product_id))
    return Inventory(stock, reservations, lines, {pid: int(total) for pid, total in received})


def read_unpublished(connection: Connection, service: str) -> list[OutboxFact]:
    o = t.outbox.c
    rows = connection.execute(
        select(o.seq, o.event_type, o.created_at).where(o.published_at.is_(None))
    )
    return [OutboxFact(service, *row) for row in rows]


def read_unsent(connection: Connection) -> list[QueuedMail]:
    """The queued mails not sent yet; none from a database older than the mail queue."""
    columns = {column["name"] for column in inspect(connection).get_columns("mails_sent")}
    if "queued_at" not in columns:
        return []
    m = t.mails_sent.c
    rows = connection.execute(
        select(m.event_id, m.order_id, m.kind, m.attempts, m.queued_at).where(
            m.sent_at.is_(None), m.queued_at.is_not(None)
        )
    )
    return [QueuedMail(*row) for row in rows]


def count_keys(connection: Connection, *columns: Any) -> dict[tuple[str, ...], int]:
    """Keys held by more than one row."""
    query = select(*columns, func.count()).group_by(*columns).having(func.count() > 1)
    return {tuple(str(v) for v in row[:-1]): int(row[-1]) for row in connection.execute(query)}


def read_maildir(maildir: Path) -> list[DeliveredMail]:
    """The headers of every mail the SMTP sink delivered."""
    parser = BytesParser(policy=email.policy.default)
    mails = []
    for path in sorted([*maildir.glob("new/*"), *maildir.glob("cur/*")]):
        with path.open("rb") as file:
            message = parser.parse(file, headersonly=True)
        envelope = message.get("X-RcptTo") or message.get("To") or ""
        recipients = tuple(
            sorted({address.lower() for _, address in getaddresses([str(envelope)]) if address})
        )
        mails.append(
            DeliveredMail(
                file=path.name,
                message_id=str(message.get("Message-ID") or "").strip(),
                recipients=recipients,
                subject=str(message.get("Subject") or ""),
            )
        )
    return mails
