"""Service databases built by hand for the checker's tests: every service's own
migrations bring them to the latest revision (found by path: the runner's code imports no
service), then rows go in with plain SQL, the way the services would have written them.

    home = migrated_home(tmp)            # each <service>.db at head, empty
    shop = Shop(home); shop.consistent() # a small shop's history where every invariant holds
"""

from __future__ import annotations

import json
import mailbox
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bazaar.platform.migrations import migrate
from bazaar.runner.topology import SERVICES

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
DATABASES = tuple(s.name for s in SERVICES if s.database)


def migrated_home(folder: Path) -> Path:
    """A home with every service's database at its latest revision and nothing in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for service in DATABASES:
        migrate(SERVICES_DIR / service / "migrations", f"sqlite+aiosqlite:///{folder}/{service}.db")
    return folder


def copy_home(template: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for service in DATABASES:
        shutil.copyfile(template / f"{service}.db", folder / f"{service}.db")
    return folder


def stamp(seconds_ago: float = 0.0) -> str:
    """A timestamp as SQLAlchemy stores a UTC datetime in SQLite."""
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


class Shop:
    """Writes rows into the services' databases of one home."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def sql(self, service: str, statement: str, *params: Any) -> None:
        with sqlite3.connect(self.home / f"{service}.db") as connection:
            connection.execute("PRAGMA ignore_check_constraints=ON")
            connection.execute("PRAGMA synchronous=OFF")  # test data: no fsync per row
            connection.execute(statement, params)
        connection.close()

    def insert(self, service: str, table: str, **values: Any) -> None:
        columns = ", ".join(f'"{name}"' for name in values)
        marks = ", ".join("?" for _ in values)
        self.sql(service, f"INSERT INTO {table} ({columns}) VALUES ({marks})", *values.values())

    def drop_constraints(self, service: str, table: str) -> None:
        """The table without its keys, so a test can write what they would refuse."""
        for statement in (
            f"CREATE TABLE {table}_loose AS SELECT * FROM {table}",
            f"DROP TABLE {table}",
            f"ALTER TABLE {table}_loose RENAME TO {table}",
        ):
            self.sql(service, statement)

    # --- inventory ---

    def product(self, product_id: str, seeded: int, *, on_hand: int, reserved: int = 0) -> None:
        self.insert(
            "inventory",
            "stock",
            product_id=product_id,
            on_hand=on_hand,
            reserved=reserved,
            version=1,
            updated_at=stamp(),
        )
        self.adjustment(f"seed:{product_id}", product_id, seeded)

    def adjustment(self, request_id: str, product_id: str, delta: int) -> None:
        self.insert(
            "inventory",
            "stock_adjustments",
            request_id=request_id,
            product_id=product_id,
            delta=delta,
            on_hand=0,
            reserved=0,
            version=1,
            created_at=stamp(),
        )

    def reservation(self, order_id: str, state: str, **lines: int) -> None:
        self.insert(
            "inventory",
            "reservations",
            order_id=order_id,
            state=state,
            short_product_ids=json.dumps(list(lines) if state == "out_of_stock" else []),
            created_at=stamp(),
            updated_at=stamp(),
        )
        for number, (product_id, qty) in enumerate(lines.items()):
            self.insert(
                "inventory",
                "reservation_lines",
                order_id=order_id,
                product_id=product_id,
                line_no=number,
                qty=qty,
            )

    # --- order, payment, notification ---

    def order(
        self,
        order_id: str,
        status: str,
        total_cents: int,
        *,
        reason: str | None = None,
        age: float = 1.0,
        step: str = "done",
    ) -> None:
        self.insert(
            "order",
            "orders",
            id=order_id,
            user_id="u-1",
            email="ada@example.com",
            status=status,
            reason=reason,
            total_cents=total_cents,
            created_at=stamp(age),
            updated_at=stamp(),
            saga_step=step,
            saga_attempts=0,
            version=1,
        )

    def payment(self, order_id: str, amount_cents: int, status: str, payment_id: str = "") -> None:
        payment_id = payment_id or f"pay-{order_id}"
        self.insert(
            "payment",
            "payments",
            payment_id=payment_id,
            order_id=order_id,
            idempotency_key=payment_id,
            amount_cents=amount_cents,
            status=status,
            created_at=stamp(),
            refunded_at=stamp() if status == "refunded" else None,
        )

    def mail_sent(self, order_id: str, kind: str, event_id: str) -> None:
        self.insert(
            "notification",
            "mails_sent",
            event_id=event_id,
            order_id=order_id,
            kind=kind,
            to="ada@example.com",
            subject=f"Your Bazaar order {order_id}: {kind}",
            sent_at=stamp(),
        )

    def deliver(self, subject: str, message_id: str, to: str = "ada@example.com") -> None:
        """A mail in the SMTP sink's maildir, as the sink stores it."""
        message = EmailMessage()
        message["From"] = "shop@bazaar.local"
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = message_id
        message["X-RcptTo"] = to
        message.set_content("Hello,\n")
        mailbox.Maildir(self.home / "mail", create=True).add(message)

    # --- messaging ---

    def outbox(self, service: str, event_id: str, *, age: float, published: bool) -> None:
        self.insert(
            service,
            "outbox",
            event_id=event_id,
            event_type="order.paid",
            envelope="{}",
            created_at=stamp(age),
            published_at=stamp() if published else None,
        )

    def inbox(self, service: str, consumer: str, event_id: str) -> None:
        self.insert(service, "inbox", consumer=consumer, event_id=event_id, processed_at=stamp())

    # --- a whole history ---

    def consistent(self) -> None:
        """Five orders that end every way a checkout can, and the stock, payments, mails
        and events they leave when everything went right. mug: 10 seeded, 2 sold;
        cup: 5 seeded, 1 held by the pending order."""
        self.product("mug", 10, on_hand=8)
        self.product("cup", 5, on_hand=5, reserved=1)
        self.order("o-paid", "paid", 2400)
        self.reservation("o-paid", "committed", mug=2)
        self.payment("o-paid", 2400, "captured")
        self.order("o-pending", "pending", 800, step="charge")
        self.reservation("o-pending", "reserved", cup=1)
        self.order("o-declined", "cancelled", 1200, reason="payment_declined")
        self.reservation("o-declined", "released", mug=1)
        self.payment("o-declined", 1200, "declined")
        self.order("o-unavailable", "cancelled", 1600, reason="payment_unavailable")
        self.reservation("o-unavailable", "released", cup=2)
        self.payment("o-unavailable", 1600, "refunded")
        self.order("o-oos", "cancelled", 60000, reason="out_of_stock")
        self.reservation("o-oos", "out_of_stock", mug=50)
        for number, order_id in enumerate(("o-paid", "o-declined", "o-unavailable", "o-oos")):
            self.outbox("order", f"e-{number}", age=90, published=True)
            kind = "confirmation" if order_id == "o-paid" else "cancellation"
            self.mail_sent(order_id, kind, f"e-{number}")
            self.inbox("notification", "notification", f"e-{number}")
            self.deliver(f"Your Bazaar order {order_id}: {kind}", f"<e-{number}@bazaar.local>")
        self.outbox("order", "e-fresh", age=1, published=False)  # the relay is on it
        self.inbox("cart", "cart", "e-created")
