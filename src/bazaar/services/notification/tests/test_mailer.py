from bazaar.services.notification.domain import Mail, MailKind
from bazaar.services.notification.mailer import SmtpMailer

MAIL = Mail(
    MailKind.CONFIRMATION,
    "0f9c2b7e-4d1a",
    "ada@example.com",
    "Your Bazaar order 0f9c2b7e is confirmed",
    "Hello,\n\n  1 x Caf\u00e9 au lait: $3.00\n",
)


def test_a_mail_becomes_a_message_with_every_header() -> None:
    mailer = SmtpMailer("127.0.0.1", 1, "Bazaar <orders@bazaar.local>")
    message = mailer.compose(MAIL, "event-1")
    assert message["From"] == "Bazaar <orders@bazaar.local>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your Bazaar order 0f9c2b7e is confirmed"
    assert message["Message-ID"] == "<event-1@bazaar.local>"
    assert message.get_content() == MAIL.body
    assert message.get_content_type() == "text/plain"
