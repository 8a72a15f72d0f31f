import email.policy
import io
import string
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bazaar.services.notification.domain import Mail, MailKind, message_id
from bazaar.services.notification.mailer import SmtpMailer, WireMail
from bazaar.services.notification.tests.conftest import Collector, free_port

SENDER = "Bazaar <orders@bazaar.local>"
MAIL = Mail(
    MailKind.CONFIRMATION,
    "0f9c2b7e-4d1a",
    "ada@example.com",
    "Your Bazaar order 0f9c2b7e is confirmed",
    "Hello,\n\n  1 x Caf\u00e9 au lait: $3.00\n",
)


def the_email_package(mail: Mail, event_id: str, sender: str = SENDER) -> bytes:
    """The mail as the `email` package composes it and `smtplib.send_message` sends it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Message-ID"] = message_id(event_id, sender)
    message.set_content(mail.body)
    out = io.BytesIO()
    BytesGenerator(out).flatten(message, linesep="\r\n")
    return out.getvalue()


def test_a_mail_becomes_a_message_with_every_header() -> None:
    composed = SmtpMailer("127.0.0.1", 1, SENDER).compose(MAIL, "event-1")
    assert isinstance(composed, WireMail)
    assert (composed.sender, composed.recipients) == ("orders@bazaar.local", ("ada@example.com",))
    message = BytesParser(policy=email.policy.default).parsebytes(composed.data)
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your Bazaar order 0f9c2b7e is confirmed"
    assert message["Message-ID"] == "<event-1@bazaar.local>"
    assert message["MIME-Version"] == "1.0"
    assert message["Content-Transfer-Encoding"] == "8bit"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == MAIL.body
    assert composed.data == the_email_package(MAIL, "event-1")


ATOM = st.text(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=8)
PRINTABLE_ASCII = st.characters(min_codepoint=32, max_codepoint=126)


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    to=st.one_of(st.builds("{}@{}.{}".format, ATOM, ATOM, ATOM), st.text(max_size=30)),
    subject=st.one_of(st.text(PRINTABLE_ASCII, max_size=90), st.text(max_size=20)),
    body=st.one_of(st.text(st.characters(min_codepoint=1, max_codepoint=300), max_size=300)),
    event_id=st.one_of(st.uuids().map(str), st.text(string.printable, min_size=1, max_size=70)),
    sender=st.sampled_from([SENDER, "orders@bazaar.local", '"Bazaar, Shop" <o@b.example>']),
)
def test_a_mail_written_directly_is_what_the_email_package_writes(
    to: str, subject: str, body: str, event_id: str, sender: str
) -> None:
    mail = Mail(MailKind.CONFIRMATION, "o-1", to, subject, body)
    try:
        composed = SmtpMailer("127.0.0.1", 1, sender).compose(mail, event_id)
    except Exception as refused:  # a header the email package refuses (a line break)
        with pytest.raises(type(refused)):
            the_email_package(mail, event_id, sender)
        return
    if isinstance(composed, WireMail):
        assert composed.data == the_email_package(mail, event_id, sender)
        assert composed.recipients == (to,)


@pytest.mark.parametrize(
    ("to", "subject", "body"),
    [
        ("ada@example.com", "Caf\u00e9 is confirmed", "Hello\n"),  # to encode (RFC 2047)
        ("ad\u00e1@example.com", "Confirmed", "Hello\n"),  # an address past ASCII
        ("ada@example.com", "Confirmed " + "x" * 80, "Hello\n"),  # a line to fold
        ("ada@example.com", "Confirmed", "x" * 200 + "\n"),  # a body to quote
    ],
)
def test_anything_else_goes_through_the_email_package(to: str, subject: str, body: str) -> None:
    mail = Mail(MailKind.CONFIRMATION, "o-1", to, subject, body)
    composed = SmtpMailer("127.0.0.1", 1, SENDER).compose(mail, "event-1")
    assert isinstance(composed, EmailMessage)
    assert composed["To"] == to
    assert composed.get_content() == body


class Connections(Collector):
    """Also remembers which connection (client port) each mail came on."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[int] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.ports.append(session.peer[1])
        return await super().handle_DATA(server, session, envelope)


async def test_connections_to_the_relay_are_reused() -> None:
    handler = Connections()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    mailer = SmtpMailer("127.0.0.1", port, SENDER, timeout=2)
    try:
        for number in range(3):
            await mailer.send(mailer.compose(MAIL, f"event-{number}"))
        assert len(handler.delivered) == 3
        assert len(set(handler.ports)) == 1
        # The relay restarts: the idle connection is dead, a new one takes the next mail.
        controller.stop()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        await mailer.send(mailer.compose(MAIL, "event-3"))
        assert len(handler.delivered) == 4
        assert len(set(handler.ports)) == 2
    finally:
        await mailer.close()
        controller.stop()
