"""`find_violations` on real service databases (each migrated by its own service's
migrations): a shop where everything went right has none, and each kind of broken
invariant, written into a copy of it, is found about the right order or product."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bazaar.runner import cli
from bazaar.runner.check import NothingToCheck, Violation, find_violations, inspect_platform
from bazaar.runner.tests.shop_data import SERVICES_DIR, Shop, copy_home, migrated_home, stamp
from bazaar.testing import provisioned_database


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_home(tmp_path_factory.mktemp("template"))


@pytest.fixture
def shop(template: Path, tmp_path: Path) -> Shop:
    shop = Shop(copy_home(template, tmp_path / "home"))
    shop.consistent()
    return shop


def kinds(violations: list[Violation]) -> set[str]:
    return {violation.kind for violation in violations}


def test_a_shop_where_everything_went_right_has_no_violation(shop: Shop) -> None:
    report = inspect_platform(shop.home)
    assert report.violations == []
    assert report.summary == "5 orders: 1 paid, 3 cancelled, 1 pending; 2 products checked"
    assert report.mails == 4
    assert report.skipped == {}


Break = Callable[[Shop], None]


def payment_twice(shop: Shop) -> None:
    shop.drop_constraints("payment", "payments")
    shop.payment("o-paid", 2400, "captured", payment_id="pay-again")


def mail_row_twice(shop: Shop) -> None:
    shop.drop_constraints("notification", "mails_sent")
    shop.mail_sent("o-paid", "confirmation", "e-again")


def inbox_twice(shop: Shop) -> None:
    shop.drop_constraints("cart", "inbox")
    shop.inbox("cart", "cart", "e-created")


def paid_without_reservation(shop: Shop) -> None:
    shop.order("o-ghost", "paid", 100)
    shop.payment("o-ghost", 100, "captured")


BROKEN: dict[str, tuple[Break, str, str, set[str]]] = {
    # name: (how it breaks, the kind that must be found, about what, other kinds it causes)
    "reserved above on hand": (
        lambda s: s.sql("inventory", "UPDATE stock SET reserved = 6 WHERE product_id = 'cup'"),
        "negative_stock",
        "cup",
        {"reservations_mismatch"},
    ),
    "negative on hand": (
        lambda s: s.sql("inventory", "UPDATE stock SET on_hand = -2 WHERE product_id = 'mug'"),
        "negative_stock",
        "mug",
        {"stock_not_conserved"},
    ),
    "reserved counter off": (
        lambda s: s.sql("inventory", "UPDATE stock SET reserved = 0 WHERE product_id = 'cup'"),
        "reservations_mismatch",
        "cup",
        set(),
    ),
    "a unit lost": (
        lambda s: s.sql("inventory", "UPDATE stock SET on_hand = 7 WHERE product_id = 'mug'"),
        "stock_not_conserved",
        "mug",
        set(),
    ),
    "an adjustment not applied": (
        lambda s: s.adjustment("r-9", "cup", 3),
        "stock_not_conserved",
        "cup",
        set(),
    ),
    "two captured payments": (payment_twice, "charged_twice", "o-paid", set()),
    "charged the wrong amount": (
        lambda s: s.sql("payment", "UPDATE payments SET amount_cents = 2500"),
        "charged_twice",
        "o-paid",
        set(),
    ),
    "paid without a reservation": (
        paid_without_reservation,
        "paid_without_commit",
        "o-ghost",
        set(),
    ),
    "paid while the stock is only held": (
        lambda s: s.sql(
            "inventory", "UPDATE reservations SET state = 'reserved' WHERE order_id = 'o-paid'"
        ),
        "paid_without_commit",
        "o-paid",
        {"reservations_mismatch", "stock_not_conserved"},
    ),
    "paid but refunded": (
        lambda s: s.sql(
            "payment", "UPDATE payments SET status = 'refunded' WHERE order_id = 'o-paid'"
        ),
        "paid_without_commit",
        "o-paid",
        set(),
    ),
    "cancelled but still charged": (
        lambda s: s.sql(
            "payment", "UPDATE payments SET status = 'captured' WHERE order_id = 'o-unavailable'"
        ),
        "cancelled_not_released",
        "o-unavailable",
        set(),
    ),
    "cancelled but the stock still held": (
        lambda s: s.sql(
            "inventory", "UPDATE reservations SET state = 'reserved' WHERE order_id = 'o-declined'"
        ),
        "cancelled_not_released",
        "o-declined",
        {"reservations_mismatch"},
    ),
    "pending for ten minutes": (
        lambda s: s.order("o-stuck", "pending", 100, age=600, step="charge"),
        "stuck_pending",
        "o-stuck",
        set(),
    ),
    "an event never published": (
        lambda s: s.outbox("inventory", "e-late", age=45, published=False),
        "unpublished_outbox",
        "inventory outbox #1",
        set(),
    ),
    "a mail unsent for five minutes": (
        lambda s: s.sql(
            "notification",
            "UPDATE mails_sent SET sent_at = NULL, attempts = 3, queued_at = ? "
            "WHERE order_id = 'o-declined'",
            stamp(300),
        ),
        "unsent_mail",
        "o-declined / cancellation",
        set(),
    ),
    "two mails recorded for one order": (
        mail_row_twice,
        "duplicate_mail",
        "o-paid / confirmation",
        set(),
    ),
    "one mail delivered twice": (
        lambda s: s.deliver("Your Bazaar order o-paid: confirmation", "<e-0@bazaar.local>"),
        "duplicate_mail",
        "<e-0@bazaar.local>",
        set(),
    ),
    "two confirmations to one address": (
        lambda s: s.deliver("Your Bazaar order o-paid: confirmation", "<other@bazaar.local>"),
        "duplicate_mail",
        "ada@example.com",
        set(),
    ),
    "an event applied twice": (inbox_twice, "event_applied_twice", "cart / e-created", set()),
}


@pytest.mark.parametrize("name", BROKEN)
def test_each_broken_invariant_is_found(shop: Shop, name: str) -> None:
    breaks, kind, subject, side_effects = BROKEN[name]
    breaks(shop)
    found = find_violations(shop.home)
    assert any(v.kind == kind and v.subject == subject for v in found), found
    assert kinds(found) <= {kind, *side_effects}, found
    assert all(v.detail for v in found)


def test_the_pending_deadline_is_the_callers(shop: Shop) -> None:
    shop.order("o-slow", "pending", 100, age=600)
    assert find_violations(shop.home, pending_deadline_seconds=900) == []
    assert kinds(find_violations(shop.home, pending_deadline_seconds=60)) == {"stuck_pending"}


def test_a_missing_database_skips_its_checks_and_no_database_is_an_error(
    shop: Shop, tmp_path: Path
) -> None:
    (shop.home / "payment.db").unlink()
    shop.sql("inventory", "DROP TABLE reservation_lines")
    report = inspect_platform(shop.home)
    assert report.skipped == {
        "payment": "no database",
        "inventory": "not migrated (no reservation_lines)",
    }
    assert report.violations == []
    with pytest.raises(NothingToCheck, match="no service database"):
        find_violations(tmp_path / "nowhere")


def test_databases_can_be_named_by_url(shop: Shop, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere.db"
    (shop.home / "order.db").rename(moved)
    urls = {"order": f"sqlite+aiosqlite:///{moved}"}
    assert inspect_platform(shop.home, urls=urls).summary.startswith("5 orders")
    assert inspect_platform(shop.home).skipped == {"order": "no database"}


def test_reading_changes_nothing(shop: Shop) -> None:
    before = {p.name: p.read_bytes() for p in shop.home.glob("*.db")}
    find_violations(shop.home)
    assert {p.name: p.read_bytes() for p in shop.home.glob("*.db")} == before


# --- the command ----------------------------------------------------------------------


def test_bazaar_check_prints_the_summary_and_exits_0(shop: Shop, capsys) -> None:
    assert cli.main(["check", "--home", str(shop.home)]) == 0
    assert "no violations (5 orders: 1 paid, 3 cancelled, 1 pending; 2 products checked)" in (
        capsys.readouterr().out
    )


def test_bazaar_check_lists_violations_and_exits_1(shop: Shop, capsys) -> None:
    shop.sql("inventory", "UPDATE stock SET on_hand = 7 WHERE product_id = 'mug'")
    assert cli.main(["--home", str(shop.home), "check"]) == 1
    out = capsys.readouterr().out
    assert "stock_not_conserved" in out and "mug" in out


def test_bazaar_check_json(shop: Shop, capsys) -> None:
    shop.order("o-stuck", "pending", 100, age=100)
    assert cli.main(["check", "--home", str(shop.home), "--json", "--pending-deadline", "50"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert [v["subject"] for v in answer["violations"]] == ["o-stuck"]
    assert answer["violations"][0]["kind"] == "stuck_pending"
    assert answer["orders"] == {"paid": 1, "cancelled": 3, "pending": 2}
    assert answer["products"] == 2


def test_bazaar_check_on_a_folder_without_databases_says_so(tmp_path: Path, capsys) -> None:
    assert cli.main(["check", "--home", str(tmp_path)]) == 2
    assert "no service database" in capsys.readouterr().err


# --- PostgreSQL -------------------------------------------------------------------------


async def test_a_postgresql_database_is_read_by_its_url(shop: Shop, tmp_path: Path) -> None:
    """A distributed deployment: the order service's database on PostgreSQL (its async
    URL, as the service is configured), read read-only through the sync driver."""
    migrations = SERVICES_DIR / "order" / "migrations"
    async with provisioned_database("postgresql", migrations, tmp_path, "order") as url:
        engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO orders (id, user_id, email, status, total_cents, created_at,"
                    " updated_at, saga_step, saga_attempts, version) VALUES ('o-stuck', 'u',"
                    " 'ada@example.com', 'pending', 100, :created, :created, 'reserve', 0, 1)"
                ),
                {"created": datetime.now(UTC) - timedelta(minutes=10)},
            )
        engine.dispose()
        (shop.home / "order.db").unlink()
        report = await asyncio.to_thread(inspect_platform, shop.home, urls={"order": url})
    assert report.read[0] == "order" and report.summary.startswith("1 orders: 0 paid")
    assert [(v.kind, v.subject) for v in report.violations] == [("stuck_pending", "o-stuck")]
