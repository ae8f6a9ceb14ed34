"""Mail loops (RFC 5321 §6.3) through the real path: another operator's server talks SMTP to our
gateway; the relay to that operator is an aiosmtpd sink.

A message with more `Received:` fields than SMTP_HOP_LIMIT (50) is refused at the end of DATA
with `554 5.4.6` and a reason in French and English; nothing is stored and nothing is sent
back. Exactly the limit is accepted. What the relay sends carries our own `Received:` line, so
the count grows at every hop; a forward or an absence reply never answers a looping message.
"""

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from audit.models import AuditEvent
from mailboxes.models import AbsenceMessage, Forwarding, IncomingAction, Message, Outbox, TrustedDomain
from tests.transport.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"


@pytest.fixture
def peer(cast):
    TrustedDomain.objects.create(name=PEER)
    return cast


def looping_message(to: str, hops: int) -> bytes:
    """A message that has passed through `hops` servers, as a loop between operators makes it."""
    message = EmailMessage()
    for hop in range(hops):
        message["Received"] = (
            f"from mx{hop % 2}.{PEER} ([192.0.2.{hop % 2 + 1}]) by mx{(hop + 1) % 2}.{PEER} "
            f"with ESMTPS id hop{hop}; Tue, 01 Dec 2026 20:{hop % 60:02d}:00 +0100"
        )
    message["From"] = f"Dr Externe <{PEER_SENDER}>"
    message["To"] = to
    message["Subject"] = "Demande d'avis"
    message["Message-ID"] = make_msgid(domain=PEER)
    message.set_content("Bonjour,\nune question sur notre patient commun.\n")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send(gateway, to: str, raw: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
        client.ehlo(f"mx.{PEER}")
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(to)[0] == 250
        try:
            code, reply = client.data(raw)
        except smtplib.SMTPDataError as exc:
            code, reply = exc.smtp_code, exc.smtp_error
    return code, reply.decode()


def test_a_message_over_the_hop_limit_is_refused_554_and_nothing_is_stored(peer, start_gateway, sink):
    cast = peer
    gateway = start_gateway()
    code, reply = send(gateway, cast.alice_box.address, looping_message(cast.alice_box.address, 51))
    assert code == 554
    assert reply.startswith("5.4.6 Boucle de messagerie")
    assert "51" in reply and "50" in reply and "Mail loop detected" in reply
    # Nothing stored, nothing entered, nothing sent back (the peer writes its own report).
    assert not Message.objects.exists()
    assert not Outbox.objects.exists()
    assert sink.handler.received == []
    refused = AuditEvent.objects.get(action="message.refused")
    assert (refused.outcome, refused.actor_label, refused.message_id) == ("too_many_hops", "smtp", None)
    assert refused.detail == {"source": "smtp", "recipients": 1}


def test_exactly_the_hop_limit_is_accepted_and_stored_behind_our_received_line(peer, start_gateway):
    cast = peer
    gateway = start_gateway()
    raw = looping_message(cast.alice_box.address, 50)
    code, reply = send(gateway, cast.alice_box.address, raw)
    assert code == 250, reply
    message = Message.objects.get()
    with message.raw.open("rb") as handle:
        stored = handle.read()
    assert stored.endswith(raw)
    assert stored.count(b"\r\nReceived: ") == 51  # the peer's 50 and ours


def test_the_limit_is_a_setting(peer, start_gateway, settings):
    cast = peer
    settings.SMTP_HOP_LIMIT = 5
    gateway = start_gateway()
    code, reply = send(gateway, cast.alice_box.address, looping_message(cast.alice_box.address, 6))
    assert (code, reply[:5]) == (554, "5.4.6")
    assert send(gateway, cast.alice_box.address, looping_message(cast.alice_box.address, 5))[0] == 250


def test_forward_and_absence_never_answer_a_message_at_the_hop_limit(peer, start_gateway, sink):
    cast = peer
    AbsenceMessage.objects.create(mailbox=cast.alice_box, enabled=True, text="Absente jusqu'au 15.")
    Forwarding.objects.create(mailbox=cast.alice_box, enabled=True, address=f"dr.remplacant@{PEER}", keep_copy=True)
    gateway = start_gateway()
    # 50 hops: accepted (the limit), stored with our line as 51: a forward would be refused as a
    # loop one hop later, and a message that travelled this much is not answered.
    assert send(gateway, cast.alice_box.address, looping_message(cast.alice_box.address, 50))[0] == 250
    actions = IncomingAction.objects.filter(mailbox=cast.alice_box)
    wait_until(lambda: actions.count() == 2 and not actions.exclude(status__in=["done", "skipped"]).exists())
    assert sorted(actions.values_list("kind", "outcome")) == [("absence", "looping"), ("forward", "looping")]
    assert Message.objects.count() == 1 and sink.handler.received == []
    # The same box answers and forwards an ordinary message, through the relay, behind our line.
    assert send(gateway, cast.alice_box.address, looping_message(cast.alice_box.address, 2))[0] == 250
    wait_until(lambda: len(sink.handler.received) == 2)
    for got in sink.handler.received:
        assert got.raw.startswith(b"Received: by ")
    forwarded = next(got for got in sink.handler.received if got.rcpt_tos == [f"dr.remplacant@{PEER}"])
    # Ours in front of the relayed copy, the gateway's, then the peer's two.
    assert forwarded.raw.count(b"Received: ") == 4
