from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import httpx

from bazaar.services.gateway import mail
from bazaar.services.gateway.settings import GatewaySettings


def deliver(
    folder: Path, to: str, subject: str, body: str, when: datetime, *, envelope_only: bool = False
) -> str:
    """What the SMTP sink does: the message in the Maildir, the envelope in X-RcptTo."""
    message = EmailMessage()
    message["From"] = "Bazaar <shop@bazaar.local>"
    if not envelope_only:
        message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    message["X-RcptTo"] = to
    message.set_content(body)
    return mailbox.Maildir(folder, create=True).add(message)


def at(hour: int) -> datetime:
    return datetime(2024, 5, 1, hour, 0, tzinfo=UTC)


async def log_in(store: httpx.AsyncClient, email: str, password: str) -> None:
    answer = await store.post("/login", data={"email": email, "password": password})
    assert answer.status_code == 303


async def test_the_mailbox_lists_only_my_mails_newest_first(
    store: httpx.AsyncClient, settings: GatewaySettings
) -> None:
    folder = settings.mail_folder
    deliver(folder, "ada@example.com", "Order received", "Thanks!", at(9))
    mine = deliver(folder, "ada@example.com", "Your order is paid", "Paid: $24.99", at(10))
    deliver(folder, "bob@example.com", "Bob's secret order", "Nope", at(11))
    deliver(folder, "ada@example.comx", "Not quite Ada", "Nope", at(12))

    await log_in(store, "ada@example.com", "correct horse")
    page = await store.get("/mail")
    assert page.status_code == 200
    assert "Bob&#39;s secret order" not in page.text and "Bob's secret order" not in page.text
    assert "Not quite Ada" not in page.text
    assert page.text.index("Your order is paid") < page.text.index("Order received")
    assert "shop@bazaar.local" in page.text
    assert f'href="/mail/{mine}"' in page.text

    message = await store.get(f"/mail/{mine}")
    assert message.status_code == 200
    assert "Paid: $24.99" in message.text


async def test_another_users_mail_cannot_be_read(
    store: httpx.AsyncClient, settings: GatewaySettings
) -> None:
    theirs = deliver(settings.mail_folder, "bob@example.com", "Bob's", "private", at(9))
    await log_in(store, "ada@example.com", "correct horse")
    for key in (theirs, "no-such-key", "a%2Fb", "%2E%2E"):
        answer = await store.get(f"/mail/{key}")
        assert answer.status_code == 404, key
        assert "private" not in answer.text


async def test_an_admin_sees_every_mail(
    store: httpx.AsyncClient, settings: GatewaySettings
) -> None:
    deliver(settings.mail_folder, "ada@example.com", "For Ada", "a", at(9))
    deliver(settings.mail_folder, "bob@example.com", "For Bob", "b", at(10), envelope_only=True)
    await log_in(store, "root@example.com", "admin password")
    page = await store.get("/mail")
    assert "For Ada" in page.text
    assert "For Bob" in page.text


async def test_markup_in_a_mail_is_shown_as_text(
    store: httpx.AsyncClient, settings: GatewaySettings
) -> None:
    key = deliver(
        settings.mail_folder, "ada@example.com", "<img src=x onerror=alert(1)>", "<b>hi</b>", at(9)
    )
    await log_in(store, "ada@example.com", "correct horse")
    assert "<img src=x" not in (await store.get("/mail")).text
    page = await store.get(f"/mail/{key}")
    assert "&lt;b&gt;hi&lt;/b&gt;" in page.text


def test_no_maildir_yet_is_an_empty_mailbox(tmp_path: Path) -> None:
    assert mail.list_mails(tmp_path / "missing", "ada@example.com", is_admin=True) == []
    assert mail.read_mail(tmp_path / "missing", "1.2.host", "ada@example.com", True) is None


def test_a_mail_without_a_date_or_plain_part_still_lists(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    message = EmailMessage()
    message["To"] = "ada@example.com"
    message.set_content("<p>html only</p>", subtype="html")
    key = mailbox.Maildir(folder, create=True).add(message)
    (summary,) = mail.list_mails(folder, "ADA@example.com", is_admin=False)
    assert summary.subject == "(no subject)"
    assert summary.date.year >= 2024  # the delivery time in the key
    found = mail.read_mail(folder, key, "ada@example.com", is_admin=False)
    assert found is not None
    assert "no plain-text part" in found.body
