"""Issue 15 item 5 (and the relay side of item 7): a non-delivery report from another operator,
as a real Postfix sends it (RFC 3464, no In-Reply-To), is matched to the message and recipient
it reports on, turns that delivery to `bounced` with the diagnostic in the timeline, and sits in
the thread. Our relay sets `ENVID`/`RET=HDRS` for a peer that speaks DSN, `BODY=8BITMIME` for an
8-bit body, and its TLS versions follow `RELAY_TLS_MAX_VERSION`.

Path: webmail send → Outbox → relay task → Postfix (accepts; its next hop, the operator's
mailbox server, refuses the recipient) → Postfix's DSN over SMTP → our gateway → delivery path.
"""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import send_message
from mailboxes.models import Delivery, Entry, Folder, Message, TrustedDomain
from tests.transport.conftest import wait_until
from tests.transport.postfix import maillog, other_operator

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
UNKNOWN = f"personne@{PEER}"


@pytest.fixture
def postfix_peer(cast, settings, start_gateway, sink):
    sink.handler.rcpt_replies[UNKNOWN] = "550 5.1.1 Utilisateur inconnu chez cet operateur"
    with other_operator(cast, settings, start_gateway, PEER, next_hop_port=sink.port) as peer:
        settings.RELAY_HOST, settings.RELAY_PORT, settings.RELAY_USE_TLS = "127.0.0.1", peer.port, False
        yield peer


def test_postfix_bounce_marks_the_delivery_bounced_in_the_thread_and_timeline(cast, postfix_peer, client):
    sent = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[UNKNOWN, cast.cardio.address],
        subject="Compte rendu opératoire",
        text="Bonjour, voici le compte rendu.",
    )
    original = sent.message
    bounced = wait_until(
        lambda: Delivery.objects.filter(message=original, address=UNKNOWN, status="bounced").first(),
        timeout=30,
        interval=0.2,
    )
    assert bounced.reason == "dsn_5.1.1"
    # Our relay asked Postfix for a DSN with our envelope id; its report echoes it.
    report = Message.objects.get(is_report=True)
    with report.raw.open("rb") as fh:
        raw = fh.read()
    assert f"Original-Envelope-Id: mss.{original.pk}.".encode() in raw
    # What Postfix sent, behind our trace (item 4): the null sender, its name and address.
    assert raw.startswith(f"Return-Path: <>\r\nReceived: from {PEER} ([127.0.0.1])".encode())
    assert b"In-Reply-To" not in raw.split(b"\r\n\r\n", 1)[0]
    # The local delivery is untouched; the report sits in the sender's inbox, in the thread.
    assert Delivery.objects.get(message=original, address=cast.cardio.address).status == "delivered"
    assert Entry.objects.filter(mailbox=cast.alice_box, message=report, folder__role=Folder.Role.INBOX).exists()
    assert report.thread_key == original.thread_key
    event = AuditEvent.objects.get(action="message.bounced", message_id=original.pk, actor_label="dsn")
    assert "Utilisateur inconnu" in event.detail["diagnostic"] and "@" not in event.detail["diagnostic"]
    # The sender's timeline shows it, with the remote diagnostic.
    client.force_login(cast.alice)
    sent_entry = Entry.objects.get(mailbox=cast.alice_box, message=original, folder__role=Folder.Role.SENT)
    page = client.get(reverse("webmail:message_timeline", args=[sent_entry.pk])).content.decode()
    assert "non distribué" in page.lower() and "Utilisateur inconnu chez cet operateur" in page
    assert "dsn=5.1.1" in maillog(postfix_peer)


def test_a_report_about_someone_elses_message_changes_nothing(cast, postfix_peer):
    """Only the sender's own box can receive the report that bounces its message."""
    sent = send_from_mailbox(cast.alice_box, cast.alice, to=[f"dr.x@{PEER}"], subject="S", text="t")
    wait_until(lambda: Delivery.objects.filter(message=sent.message, status="relayed").exists(), timeout=20)
    forged = (
        f"From: <MAILER-DAEMON@{PEER}>\r\nTo: <{cast.cardio.address}>\r\nSubject: Undelivered\r\n"
        f"Message-ID: <dsn-forged@{PEER}>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {PEER}\r\nOriginal-Envelope-Id: mss.{sent.message.pk}.{sent.message.sha256[:16]}\r\n\r\n"
        f"Final-Recipient: rfc822; dr.x@{PEER}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {sent.message.message_id}\r\n--b--\r\n"
    ).encode()
    send_message(forged, envelope_from="", envelope_to=[cast.cardio.address], source="smtp")
    assert Delivery.objects.get(message=sent.message).status == "relayed"


def test_relay_sends_8bitmime_for_an_8bit_body(cast, sink, settings):
    TrustedDomain.objects.create(name=PEER)
    raw = (
        f"From: <{cast.alice_box.address}>\r\nTo: <dr.x@{PEER}>\r\nSubject: =?utf-8?q?R=C3=A9sultats?=\r\n"
        "Message-ID: <huit-bits@ch-troispics.mssante.fr>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Résultats joints, à revoir en consultation.\r\n"
    ).encode()
    send_message(
        raw,
        envelope_from=cast.alice_box.address,
        envelope_to=[f"dr.x@{PEER}"],
        source="webmail",
        sender_mailbox=cast.alice_box,
    )
    [got] = sink.handler.received
    assert "BODY=8BITMIME" in got.mail_options
    send_from_mailbox(cast.alice_box, cast.alice, to=[f"dr.x@{PEER}"], subject="ascii", text="plain")
    assert "BODY=8BITMIME" not in sink.handler.received[1].mail_options


@pytest.mark.parametrize(("setting", "version"), [("1.2", "TLSv1.2"), ("", "TLSv1.3")])
def test_relay_tls_versions_are_settable(cast, tls_sink, settings, setting, version):
    """RELAY_TLS_MAX_VERSION works like the listener's SMTPD_TLS_MAX_VERSION (issue 15 item 7)."""
    TrustedDomain.objects.create(name=PEER)
    settings.RELAY_USE_TLS, settings.RELAY_TLS_VERIFY = True, False
    settings.RELAY_TLS_MAX_VERSION = setting
    send_from_mailbox(cast.alice_box, cast.alice, to=[f"dr.x@{PEER}"], subject="S", text="t")
    [got] = tls_sink.handler.received
    assert got.tls and got.tls_version == version
