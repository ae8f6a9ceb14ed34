"""SMTPUTF8 (RFC 6531) is not offered by the gateway (docs/messaging.md "No SMTPUTF8"). What a real
Postfix peer with its default `smtputf8_enable = yes` does with its users' mail for one of our
boxes, as its SMTPUTF8_README says: UTF-8 header values sent without the SMTPUTF8 request are
relayed as they are (and stored here as UTF-8); a message sent with the request is relayed when
its headers and envelope are ASCII, and bounced by Postfix itself (5.6.7) when they are not — it
never reaches us."""

import smtplib
import uuid

import pytest

from mailboxes.models import Message
from tests.transport.conftest import wait_until
from tests.transport.postfix import maillog, other_operator

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"


@pytest.fixture
def utf8_peer(cast, settings, start_gateway, sink):
    with other_operator(cast, settings, start_gateway, PEER, next_hop_port=sink.port, smtputf8=True) as peer:
        yield peer


def raw_message(to: str, subject: str, message_id: str) -> bytes:
    """A message as a mail client of the peer writes it, the subject as given (raw UTF-8 or an
    RFC 2047 encoded word), the body in 8-bit UTF-8."""
    lines = [
        f"From: Dr Externe <{PEER_SENDER}>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{message_id}>",
        "Date: Tue, 01 Dec 2026 10:00:00 +0100",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Bonjour, voici les résultats.",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def submit(peer, to: str, subject: str, *, smtputf8: bool) -> str:
    """Hand the message to the peer's Postfix (its smtpd, as its users' submission would), with
    or without the SMTPUTF8 request; the Message-ID."""
    message_id = f"{uuid.uuid4().hex}@{PEER}"
    options = ["BODY=8BITMIME"] + (["SMTPUTF8"] if smtputf8 else [])
    with smtplib.SMTP("127.0.0.1", peer.port, timeout=10) as smtp:
        smtp.ehlo("poste.autre-operateur.mssante.fr")
        assert "smtputf8" in smtp.esmtp_features  # Postfix offers it; our gateway does not
        assert smtp.sendmail(PEER_SENDER, [to], raw_message(to, subject, message_id), mail_options=options) == {}
    return message_id


def stored(message_id: str) -> Message | None:
    return Message.objects.filter(message_id__in=[message_id, f"<{message_id}>"]).first()


def test_utf8_headers_without_the_request_are_relayed_and_stored(cast, utf8_peer):
    message_id = submit(utf8_peer, cast.alice_box.address, "Résultats d'échographie", smtputf8=False)
    message = wait_until(lambda: stored(message_id), timeout=30, interval=0.2)
    assert message.subject == "Résultats d'échographie"


def test_with_the_request_ascii_headers_are_relayed(cast, utf8_peer):
    encoded = "=?utf-8?q?R=C3=A9sultats_d=27=C3=A9chographie?="
    message_id = submit(utf8_peer, cast.alice_box.address, encoded, smtputf8=True)
    message = wait_until(lambda: stored(message_id), timeout=30, interval=0.2)
    assert message.subject == "Résultats d'échographie"


def test_with_the_request_utf8_headers_are_bounced_by_the_peer_and_never_reach_us(cast, utf8_peer, sink):
    message_id = submit(utf8_peer, cast.alice_box.address, "Résultats d'échographie", smtputf8=True)
    log = wait_until(lambda: "status=bounced" in maillog(utf8_peer) and maillog(utf8_peer), timeout=30, interval=0.2)
    assert "dsn=5.6.7" in log and "SMTPUTF8 is required, but was not offered by host" in log
    # The report goes back to the sender at the peer operator (its mailbox server: the sink).
    report = wait_until(lambda: [r for r in sink.handler.received if r.rcpt_tos == [PEER_SENDER]], timeout=30)
    assert report[0].mail_from == "<>"  # a report, from the null sender
    assert stored(message_id) is None
