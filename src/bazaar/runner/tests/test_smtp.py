import email.policy
import mailbox
import signal
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from bazaar.runner.ports import free_ports
from bazaar.runner.probes import tcp_open
from bazaar.runner.smtp import messages_to
from bazaar.runner.tests.helpers import eventually


@pytest.fixture
def sink(tmp_path: Path):
    port = free_ports(1)[0]
    maildir = tmp_path / "mail"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bazaar.runner.smtp",
            "--port",
            str(port),
            "--maildir",
            str(maildir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        eventually(lambda: tcp_open("127.0.0.1", port) or process.poll() is not None, timeout=10)
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield port, maildir, process
    finally:
        process.kill()
        process.wait()


def test_a_sent_mail_lands_in_the_maildir(sink) -> None:
    port, maildir, _ = sink
    message = EmailMessage()
    message["From"] = "Bazaar <shop@bazaar.local>"
    message["To"] = "Zoë <zoe@example.com>"
    message["Subject"] = "Your order 1234 is paid — thank you"
    message.set_content("Total: 42.00\n")

    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(message)

    assert {"tmp", "new", "cur"} <= {p.name for p in maildir.iterdir()}
    [stored_path] = list((maildir / "new").iterdir())
    stored = BytesParser(policy=email.policy.default).parsebytes(stored_path.read_bytes())
    assert stored["Subject"] == "Your order 1234 is paid — thank you"
    assert stored["X-RcptTo"] == "zoe@example.com"
    assert stored["X-MailFrom"] == "shop@bazaar.local"
    assert stored.get_content() == "Total: 42.00\n"
    assert len(mailbox.Maildir(maildir)) == 1


def test_messages_are_found_by_recipient(sink) -> None:
    port, maildir, _ = sink
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        for to in ("ann@example.com", "bob@example.com", "ann@example.com"):
            client.sendmail("shop@bazaar.local", [to], f"To: {to}\nSubject: hi {to}\n\nbody\n")

    assert len(messages_to(maildir, "ANN@example.com")) == 2
    assert [m["Subject"] for m in messages_to(maildir, "bob@example.com")] == ["hi bob@example.com"]
    assert messages_to(maildir, "carol@example.com") == []


def test_the_sink_stops_cleanly_on_sigterm(sink) -> None:
    _, _, process = sink

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=5) == 0


def test_a_resent_message_id_is_folded_even_across_a_restart(tmp_path: Path) -> None:
    """A sender that died after the relay took its mail sends it again, with the same
    Message-ID: the mailbox shows it once, even if the sink restarted in between."""
    port = free_ports(1)[0]
    maildir = tmp_path / "mail"
    command = [sys.executable, "-m", "bazaar.runner.smtp", "--port", str(port)]
    command += ["--maildir", str(maildir)]

    def send(message_id: str, to: str) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.sendmail(
                "shop@bazaar.local",
                [to],
                f"To: {to}\nMessage-ID: {message_id}\nSubject: paid\n\nbody\n",
            )

    for _ in range(2):  # the second sink starts on the first one's maildir
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            eventually(lambda: tcp_open("127.0.0.1", port), timeout=10)
            send("<order-1@bazaar.local>", "ann@example.com")
            send("<order-1@bazaar.local>", "ann@example.com")
        finally:
            process.kill()
            process.wait()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: tcp_open("127.0.0.1", port), timeout=10)
        send("<order-1@bazaar.local>", "bob@example.com")  # another recipient: delivered
        send("<order-2@bazaar.local>", "ann@example.com")  # another message: delivered
    finally:
        process.kill()
        process.wait()

    assert [m["Message-ID"] for m in messages_to(maildir, "ann@example.com")].count(
        "<order-1@bazaar.local>"
    ) == 1
    assert len(messages_to(maildir, "ann@example.com")) == 2
    assert len(messages_to(maildir, "bob@example.com")) == 1


def test_an_empty_folder_made_by_someone_else_becomes_a_maildir(tmp_path: Path) -> None:
    """A mounted volume is an empty folder that exists before the sink starts."""
    from bazaar.runner.smtp import MaildirHandler

    folder = tmp_path / "volume"
    folder.mkdir()
    handler = MaildirHandler(folder)
    key = handler.maildir.add(b"Subject: stored\n\nbody\n")
    assert handler.maildir[key]["Subject"] == "stored"
