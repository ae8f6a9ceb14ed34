"""Absence message and forwarding through the real path: another operator's server talks SMTP to
our gateway; the absence reply and the forward leave through the relay to that operator's sink.

RULES.md §6–7, RFC 3834: one reply per sender per period, sent with the null envelope sender and
`Auto-Submitted: auto-replied`; none to an `Auto-Submitted` message or a delivery report.
"""

import smtplib
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from mailboxes.models import AbsenceMessage, Forwarding, IncomingAction, Message, Outbox, TrustedDomain
from tests.transport.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"


@pytest.fixture
def peer(cast):
    TrustedDomain.objects.create(name=PEER)
    return cast


def raw_message(to: str, *, subject="Demande d'avis", headers=None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Dr Externe <{PEER_SENDER}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=PEER)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content("Bonjour,\nune question sur notre patient commun.\n")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dsn_to(to: str) -> bytes:
    boundary = f"dsn-{uuid.uuid4().hex}"
    return (
        f"From: Mail Delivery System <mailer-daemon@{PEER}>\r\nTo: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: {make_msgid(domain=PEER)}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary={boundary}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nNon distribue.\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.{PEER}\r\n\r\n"
        f"Final-Recipient: rfc822; x@{PEER}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def deliver(gateway, mail_from: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
        client.ehlo(f"mx.{PEER}")
        code, reply = client.mail(mail_from)
        assert code == 250, reply
        assert client.rcpt(to)[0] == 250
        code, reply = client.data(raw)
        assert code == 250, reply


def test_absence_reply_goes_back_once_with_null_sender_and_never_to_automatic_mail(peer, start_gateway, sink):
    cast = peer
    AbsenceMessage.objects.create(
        mailbox=cast.alice_box, enabled=True, text="Absente jusqu'au 15 ; urgences : cardiologie@."
    )
    gateway = start_gateway()
    first = raw_message(cast.alice_box.address)
    deliver(gateway, PEER_SENDER, cast.alice_box.address, first)
    wait_until(lambda: sink.handler.received, timeout=10)
    reply = sink.handler.received[0]
    assert reply.mail_from == "<>" or reply.mail_from == ""  # the null reverse-path (RFC 3834 §3.3)
    assert reply.rcpt_tos == [PEER_SENDER]
    parsed = message_from_bytes(reply.raw, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"].strip() == message_from_bytes(first, policy=policy.default)["Message-ID"].strip()
    assert cast.alice_box.address in parsed["From"]
    assert "Absente jusqu'au 15" in parsed.get_payload(decode=True).decode()

    # The same sender again: no second reply in this period (the action records why).
    deliver(gateway, PEER_SENDER, cast.alice_box.address, raw_message(cast.alice_box.address, subject="Relance"))
    # An automatic message and a delivery report: never answered.
    auto = raw_message(cast.alice_box.address, subject="Résultats", headers={"Auto-Submitted": "auto-generated"})
    deliver(gateway, PEER_SENDER, cast.alice_box.address, auto)
    deliver(gateway, "", cast.alice_box.address, dsn_to(cast.alice_box.address))
    relance = IncomingAction.objects.get(message__subject="Relance")
    wait_until(lambda: IncomingAction.objects.get(pk=relance.pk).status == IncomingAction.Status.SKIPPED)
    assert IncomingAction.objects.get(pk=relance.pk).outcome == "already_answered"
    # Neither the Auto-Submitted message nor the DSN even queued an action; one reply only left.
    assert not IncomingAction.objects.filter(message__subject__in=["Résultats", "Undelivered Mail Returned to Sender"])
    assert Message.objects.filter(subject="Undelivered Mail Returned to Sender").exists()
    assert Outbox.objects.filter(status=Outbox.Status.SENT).count() == 1
    assert len(sink.handler.received) == 1


def test_forward_to_another_operator_keeps_the_original_and_its_envelope_is_the_box(peer, start_gateway, sink):
    cast = peer
    Forwarding.objects.create(mailbox=cast.alice_box, enabled=True, address=f"dr.remplacant@{PEER}", keep_copy=True)
    gateway = start_gateway()
    original = raw_message(cast.alice_box.address, subject="Compte rendu opératoire")
    deliver(gateway, PEER_SENDER, cast.alice_box.address, original)
    wait_until(lambda: sink.handler.received, timeout=10)
    forwarded = sink.handler.received[0]
    assert forwarded.mail_from == cast.alice_box.address
    assert forwarded.rcpt_tos == [f"dr.remplacant@{PEER}"]
    assert forwarded.raw.endswith(original)  # the original bytes, unaltered, under the Resent block
    # Our gateway's trace stays (its Received: counts the hop) but not the Return-Path: it wrote
    # at delivery, which a server passing a message on must not send (RFC 5321 §4.4).
    head = forwarded.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nReturn-Path:" not in head and not head.startswith(b"Return-Path:")
    assert head.count(b"Received: ") == 2  # the relay's line and the gateway's
    parsed = message_from_bytes(forwarded.raw, policy=policy.default)
    assert parsed["Resent-From"] == cast.alice_box.address
    assert parsed["Resent-To"] == f"dr.remplacant@{PEER}"
    assert parsed["Subject"] == "Compte rendu opératoire"


def test_a_real_worker_sends_the_reply_once_even_when_the_task_comes_twice(
    peer, start_gateway, sink, redis_broker, start_worker
):
    """The gateway commits and publishes only the action's id to Redis; a real worker (another
    process) claims it, delivers the reply and relays it; a duplicate of the task sends nothing."""
    from mailboxes.tasks import run_incoming_action

    cast = peer
    AbsenceMessage.objects.create(mailbox=cast.alice_box, enabled=True, text="Absente.")
    relay_env = {"RELAY_HOST": sink.host, "RELAY_PORT": str(sink.port), "RELAY_RETRY_BASE_SECONDS": "1"}
    worker = start_worker(queue=redis_broker.queue, **relay_env)
    gateway = start_gateway()
    deliver(gateway, PEER_SENDER, cast.alice_box.address, raw_message(cast.alice_box.address))
    action = IncomingAction.objects.get()
    try:
        wait_until(lambda: sink.handler.received, timeout=20)
    except AssertionError:
        raise AssertionError(worker.output()[-3000:]) from None
    assert message_from_bytes(sink.handler.received[0].raw)["Auto-Submitted"] == "auto-replied"
    wait_until(lambda: IncomingAction.objects.get(pk=action.pk).status == IncomingAction.Status.DONE)

    run_incoming_action.apply_async((action.pk,), queue=redis_broker.queue)
    wait_until(lambda: worker.output().count("run_incoming_action") >= 4, timeout=20)  # received + succeeded, twice
    action.refresh_from_db()
    assert (action.attempts, action.outcome) == (1, "sent")
    assert len(sink.handler.received) == 1
    assert Message.objects.filter(auto_submitted=True, envelope_from="").count() == 1
