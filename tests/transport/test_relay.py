"""The outbound relay through the real path: webmail send → delivery → Outbox → Celery task →
smtplib → an aiosmtpd sink standing for another operator (issue 3 item 6).

Tasks run in process here (eager); test_relay_worker.py runs a real worker on Redis.
"""

from datetime import timedelta
from email import message_from_bytes

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes import relay
from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import send_message
from mailboxes.models import Delivery, Entry, Folder, Message, Outbox, TrustedDomain
from mailboxes.reports import build_dsn

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
EXTERNAL = f"dr.externe@{PEER}"


@pytest.fixture
def peer(cast):
    TrustedDomain.objects.create(name=PEER)
    return cast


def send_to_external(cast, **kwargs):
    return send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=kwargs.pop("to", [EXTERNAL, cast.cardio.address]),
        subject="Compte rendu de consultation",
        text="Bonjour, voici le compte rendu.",
        attachments=[("cr.pdf", "application/pdf", b"%PDF-1.4\n" + b"x" * 2000)],
        **kwargs,
    )


def inbox(box):
    return Entry.objects.filter(mailbox=box, folder__role=Folder.Role.INBOX)


def test_webmail_send_delivers_locally_and_relays_the_same_bytes(peer, sink):
    cast = peer
    result = send_to_external(cast)
    message = result.message
    # Local recipient: entered in the inbox; the sender's copy in Sent.
    assert inbox(cast.cardio).filter(message=message).exists()
    assert Entry.objects.filter(mailbox=cast.alice_box, message=message, folder__role=Folder.Role.SENT).exists()
    # External recipient: relayed once, same Message-ID, same bytes, envelope from the box.
    [got] = sink.handler.received
    assert got.message_id == message.message_id
    assert got.mail_from == cast.alice_box.address
    assert got.rcpt_tos == [EXTERNAL]
    with message.raw.open("rb") as fh:
        stored = fh.read()
    # Behind our own trace line (RFC 5321 §4.4: the hops of a loop add up, SMTP_HOP_LIMIT).
    trace = f"Received: by {relay.reports.reporting_host()} (MSSante) id {relay.envelope_id(message)};\r\n\t".encode()
    assert got.raw.startswith(trace)
    assert got.raw.replace(b"\r\n", b"\n") == relay.trace_line(message).replace(b"\r\n", b"\n") + stored.replace(
        b"\r\n", b"\n"
    )
    outbox = Outbox.objects.get(message=message)
    assert (outbox.status, outbox.attempts) == ("sent", 1)
    assert Delivery.objects.get(message=message, address=EXTERNAL).status == "relayed"
    event = AuditEvent.objects.get(action="message.relayed", message_id=message.pk)
    delivery = Delivery.objects.get(message=message, address=EXTERNAL)
    assert event.detail == {"recipients": 1, "attempt": 1, "deliveries": [delivery.pk]}
    # Running the task again is a no-op: nothing goes out twice.
    assert relay.send_outbox(outbox.pk) is None
    assert len(sink.handler.received) == 1


def test_451_then_250_is_delivered_exactly_once(peer, sink):
    sink.handler.data_replies = ["451 4.3.0 Try again later"]
    message = send_to_external(peer, to=[EXTERNAL]).message
    outbox = Outbox.objects.get(message=message)
    assert (outbox.status, outbox.attempts) == ("sent", 2)
    assert outbox.last_error == ""
    # Two transactions reached the sink; only the second was accepted.
    assert [r.message_id for r in sink.handler.received] == [message.message_id] * 2
    assert AuditEvent.objects.filter(action="message.relayed", message_id=message.pk).count() == 1
    assert Delivery.objects.get(message=message, address=EXTERNAL).status == "relayed"
    assert not Message.objects.filter(is_report=True).exists()


def test_temporary_failure_waits_with_backoff_then_the_sweeper_sends(peer, sink, settings):
    from prometheus_client import REGISTRY

    from operations.models import DailyStat
    from operations.statistics import aggregate_day

    def deferred_attempts():
        return REGISTRY.get_sample_value("mss_relay_attempts_total", {"outcome": "deferred"}) or 0

    settings.RELAY_RETRY_BASE_SECONDS = 120
    sink.handler.data_replies = ["421 4.4.2 Busy"]
    counted = deferred_attempts()
    message = send_to_external(peer, to=[EXTERNAL]).message
    outbox = Outbox.objects.get(message=message)
    assert (outbox.status, outbox.attempts) == ("pending", 1)
    assert outbox.last_error.startswith("421")
    deferred = AuditEvent.objects.get(action="message.relay_deferred", message_id=message.pk)
    assert deferred.mailbox_id == message.sender_mailbox_id and deferred.detail["code"] == 421
    # Operators see it: the relay-attempts metric and the daily statistics (issue 14).
    assert deferred_attempts() == counted + 1
    aggregate_day(timezone.localdate())
    assert DailyStat.objects.get(metric="relay_deferred", mailbox_id=message.sender_mailbox_id).value == 1
    assert timedelta(seconds=110) < outbox.next_attempt_at - timezone.now() <= timedelta(seconds=120)
    # Not due yet: the sweeper leaves it alone, a stray task does nothing.
    call_command("relay_sweep")
    assert relay.send_outbox(outbox.pk) is None
    assert len(sink.handler.received) == 1
    # Its time has come (and its retry task was lost): the sweeper sends it.
    Outbox.objects.filter(pk=outbox.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    call_command("relay_sweep")
    outbox.refresh_from_db()
    assert (outbox.status, outbox.attempts) == ("sent", 2)
    assert len(sink.handler.received) == 2


def test_550_gives_one_dsn_in_the_senders_inbox(peer, sink):
    cast = peer
    sink.handler.rcpt_replies = {EXTERNAL: "550 5.1.1 No such user here"}
    message = send_to_external(cast).message
    outbox = Outbox.objects.get(message=message)
    assert outbox.status == "failed"
    assert outbox.last_error == "550 5.1.1 No such user here"
    delivery = Delivery.objects.get(message=message, address=EXTERNAL)
    assert (delivery.status, delivery.reason) == ("bounced", "smtp_550")
    [dsn_entry] = inbox(cast.alice_box).select_related("message")
    dsn = dsn_entry.message
    assert dsn.is_report and dsn.in_reply_to == message.message_id
    with dsn.raw.open("rb") as fh:
        dsn_raw = fh.read()
    report = message_from_bytes(dsn_raw)
    assert (report.get_content_type(), report.get_param("report-type")) == ("multipart/report", "delivery-status")
    assert b"Status: 5.1.1" in dsn_raw and f"Final-Recipient: rfc822; {EXTERNAL}".encode() in dsn_raw
    assert AuditEvent.objects.filter(action="message.bounced", message_id=message.pk, outcome="failed").count() == 1
    # Running the task again changes nothing: still one DSN.
    assert relay.send_outbox(outbox.pk) is None
    assert Message.objects.filter(is_report=True).count() == 1
    assert len(sink.handler.received) == 0  # refused at RCPT: no DATA


def test_no_dsn_for_a_dsn(peer, sink):
    cast = peer
    sink.handler.data_replies = ["550 5.7.1 Rejected"]
    original = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.cardio.address], subject="Bonjour", text="Texte"
    ).message
    # A report addressed to another operator (system source), refused there for good.
    raw = build_dsn(original, [(cast.cardio.address, "5.2.2", "552 mailbox full")], "mx.test")
    report = send_message(raw, envelope_from="", envelope_to=[EXTERNAL], source="system").message
    assert report.is_report
    outbox = Outbox.objects.get(message=report)
    assert outbox.status == "failed"
    [got] = sink.handler.received
    assert got.mail_from == "<>"  # reports travel with the null reverse-path
    assert Message.objects.filter(is_report=True).count() == 1
    assert not inbox(cast.alice_box).exists()


def test_retry_window_over_turns_a_4xx_into_a_dsn(peer, sink, settings):
    settings.RELAY_RETRY_WINDOW_SECONDS = 0
    sink.handler.data_replies = ["451 4.3.0 Still busy"]
    cast = peer
    message = send_to_external(cast, to=[EXTERNAL]).message
    outbox = Outbox.objects.get(message=message)
    assert outbox.status == "failed"
    [dsn_entry] = inbox(cast.alice_box).select_related("message")
    with dsn_entry.message.raw.open("rb") as fh:
        assert b"Status: 4.4.7" in fh.read()


def test_unreachable_relay_is_retried_not_bounced(peer, sink, settings):
    from tests.transport.conftest import free_port

    settings.RELAY_PORT = free_port()  # nobody listens there
    settings.RELAY_RETRY_BASE_SECONDS = 30
    message = send_to_external(peer, to=[EXTERNAL]).message
    outbox = Outbox.objects.get(message=message)
    assert (outbox.status, outbox.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in outbox.last_error
    assert Delivery.objects.get(message=message, address=EXTERNAL).status == "queued"
    assert not Message.objects.filter(is_report=True).exists()


def test_relay_over_starttls_verifies_the_peer_certificate(peer, tls_sink, tls_files, settings):
    settings.RELAY_USE_TLS = True
    settings.RELAY_RETRY_BASE_SECONDS = 30
    # The relay's certificate is not signed by a CA we trust: not sent, kept for a retry.
    message = send_to_external(peer, to=[EXTERNAL]).message
    outbox = Outbox.objects.get(message=message)
    assert (outbox.status, outbox.last_error) == ("pending", "SSLCertVerificationError")
    assert tls_sink.handler.received == []
    # With the right CA (here the certificate itself), it goes out over TLS.
    settings.RELAY_TLS_CA_FILE = tls_files.cert
    Outbox.objects.filter(pk=outbox.pk).update(next_attempt_at=None)
    assert relay.send_outbox(outbox.pk) is None
    [got] = tls_sink.handler.received
    assert got.tls and got.message_id == message.message_id
    outbox.refresh_from_db()
    assert outbox.status == "sent"


def test_sweeper_takes_back_a_row_stuck_in_sending(peer, sink, settings):
    settings.RELAY_SENDING_TIMEOUT_SECONDS = 600
    sink.handler.data_replies = ["451 4.3.0 later"]
    settings.RELAY_RETRY_BASE_SECONDS = 300
    message = send_to_external(peer, to=[EXTERNAL]).message
    outbox = Outbox.objects.get(message=message)
    # As if a worker had claimed the row and died mid-send ten minutes ago.
    Outbox.objects.filter(pk=outbox.pk).update(status="sending", updated_at=timezone.now() - timedelta(minutes=11))
    counts = relay.sweep_outbox()
    assert counts == {"pending": 0, "stuck": 1}
    outbox.refresh_from_db()
    assert outbox.status == "sent"
    assert [r.message_id for r in sink.handler.received] == [message.message_id] * 2
    # A row that is sending right now is left alone.
    Outbox.objects.filter(pk=outbox.pk).update(status="sending", updated_at=timezone.now())
    assert relay.sweep_outbox() == {"pending": 0, "stuck": 0}
