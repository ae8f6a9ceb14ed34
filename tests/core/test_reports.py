"""Read receipts (MDN, RFC 8098) and non-delivery reports (DSN, RFC 3464), without loops."""

import email

import pytest

from audit.models import AuditEvent
from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import send_message
from mailboxes.mime import parse_message
from mailboxes.models import Delivery, Entry, Message
from mailboxes.reports import build_dsn, build_mdn, send_dsn, send_mdn, system_address
from tests.core.conftest import PEER_SENDER, raw_message


def test_mdn_is_a_disposition_notification_report(cast):
    sent = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Convocation", text="t", request_mdn=True
    )
    original = sent.message
    assert original.mdn_requested_to == cast.alice_box.address
    raw = build_mdn(original, cast.charlie_box)
    report = email.message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "disposition-notification"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["To"] == f"<{cast.alice_box.address}>" and report["In-Reply-To"] == original.message_id
    machine = [p for p in report.walk() if p.get_content_type() == "message/disposition-notification"][0]
    text = machine.as_string()
    assert f"Original-Message-ID: {original.message_id}" in text
    # The original had no Original-Recipient field: the receipt has none either (RFC 8098 §3.2.3).
    assert "Original-Recipient" not in text
    assert f"Final-Recipient: rfc822;{cast.charlie_box.address}" in text
    # A person displayed the message; the receipt left by itself (issue 15 item 7).
    assert "Disposition: manual-action/MDN-sent-automatically; displayed" in text
    parsed = parse_message(raw)
    assert parsed.is_report and parsed.auto_submitted
    assert parsed.report_fields["original-message-id"] == original.message_id


def test_mdn_round_trip_marks_the_delivery_read_once(cast):
    sent = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address, cast.cardio.address],
        subject="Convocation",
        text="t",
        request_mdn=True,
    )
    entry = Entry.objects.get(mailbox=cast.charlie_box, message=sent.message)
    assert send_mdn(entry) is True
    assert send_mdn(entry) is False  # idempotent: the conditional update already claimed it
    entry.refresh_from_db()
    assert entry.mdn_sent_at is not None
    mdn = Message.objects.get(is_report=True)
    assert mdn.envelope_from == "" and mdn.report_type == "disposition-notification" and mdn.auto_submitted
    assert list(Entry.objects.filter(message=mdn).values_list("mailbox_id", "folder__role")) == [
        (cast.alice_box.pk, "inbox")
    ]
    statuses = dict(Delivery.objects.filter(message=sent.message).values_list("address", "status"))
    assert statuses == {cast.charlie_box.address: "read", cast.cardio.address: "delivered"}
    assert AuditEvent.objects.filter(action="message.mdn_sent", message_id=sent.message.pk).count() == 1
    assert AuditEvent.objects.filter(action="message.read", message_id=sent.message.pk, actor_label="mdn").count() == 1


def test_inbound_mdn_over_smtp_marks_the_delivery_read(cast, settings):
    from mailboxes.models import TrustedDomain

    TrustedDomain.objects.create(name="ch-ailleurs.mssante.fr")
    sent = send_from_mailbox(
        cast.alice_box, cast.alice, to=["doc@ch-ailleurs.mssante.fr"], subject="S", text="t", request_mdn=True
    )
    mdn = (
        "From: <doc@ch-ailleurs.mssante.fr>\r\nTo: <alice.martin@ch-troispics.mssante.fr>\r\n"
        "Message-ID: <mdn-1@ch-ailleurs.mssante.fr>\r\nAuto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\r\n\r\n'
        "--r\r\nContent-Type: text/plain\r\n\r\nLu.\r\n--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"Final-Recipient: rfc822;doc@ch-ailleurs.mssante.fr\r\nOriginal-Message-ID: {sent.message.message_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n--r--\r\n"
    ).encode()
    send_message(mdn, envelope_from="", envelope_to=[cast.alice_box.address], source="smtp")
    assert Delivery.objects.get(message=sent.message).status == "read"


def test_no_mdn_for_automatic_messages_or_reports(cast):
    raw = raw_message(
        headers={
            "Disposition-Notification-To": PEER_SENDER,
            "Auto-Submitted": "auto-generated",
        }
    )
    automatic = send_message(
        raw,
        envelope_from=PEER_SENDER,
        envelope_to=[cast.alice_box.address],
        source="smtp",
    )
    entry = Entry.objects.get(message=automatic.message)
    assert send_mdn(entry) is False
    assert Message.objects.filter(is_report=True).count() == 0
    entry.refresh_from_db()
    assert entry.mdn_sent_at is None

    report = (
        b"From: <mailer-daemon@autre-operateur.mssante.fr>\r\nMessage-ID: <rep@x>\r\n"
        b"Disposition-Notification-To: dr.externe@autre-operateur.mssante.fr\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nx\r\n--r--\r\n"
    )
    result = send_message(report, envelope_from="", envelope_to=[cast.alice_box.address], source="smtp")
    assert result.message.is_report and result.message.mdn_requested_to
    assert send_mdn(Entry.objects.get(message=result.message)) is False
    assert Message.objects.filter(auto_submitted=True, is_report=True).count() == 0


def test_dsn_lands_in_the_sender_box(cast):
    sent = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Compte rendu", text="t"
    )
    raw = build_dsn(sent.message, [("x@ch-ailleurs.mssante.fr", "5.1.1", "550 5.1.1 user unknown")], "mx.example")
    report = email.message_from_bytes(raw)
    assert report.get_param("report-type") == "delivery-status"
    assert report["From"].endswith("<mailer-daemon@ch-troispics.mssante.fr>")
    status_part = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"][0]
    text = status_part.as_string()
    assert "Reporting-MTA: dns; mx.example" in text
    assert "Final-Recipient: rfc822; x@ch-ailleurs.mssante.fr" in text and "Status: 5.1.1" in text
    assert "Action: failed" in text

    dsn = send_dsn(sent.message, [("x@ch-ailleurs.mssante.fr", "5.1.1", "550 5.1.1 user unknown")])
    assert dsn is not None and dsn.report_type == "delivery-status" and dsn.envelope_from == ""
    assert list(Entry.objects.filter(message=dsn).values_list("mailbox_id", flat=True)) == [cast.alice_box.pk]
    assert dsn.in_reply_to == sent.message.message_id


def test_no_dsn_of_a_dsn_nor_of_an_automatic_message(cast):
    sent = send_from_mailbox(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="S", text="t")
    dsn = send_dsn(sent.message, [("x@y.mssante.fr", "5.1.1", "unknown")])
    dsn.sender_mailbox = cast.alice_box  # even if it had a sender box, a report is never answered
    assert send_dsn(dsn, [("x@y.mssante.fr", "5.1.1", "unknown")]) is None
    automatic = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="S",
        text="t",
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    assert automatic.message.auto_submitted
    assert send_dsn(automatic.message, [("x@y.mssante.fr", "5.1.1", "unknown")]) is None
    assert Message.objects.filter(is_report=True).count() == 1


def test_system_addresses(settings):
    assert system_address("ch-troispics.mssante.fr") == "mailer-daemon@ch-troispics.mssante.fr"
    assert system_address(settings.PATIENT_DOMAIN) == settings.PATIENT_SYSTEM_ADDRESS


@pytest.mark.usefixtures("cast")
def test_patient_mdn_comes_from_the_patient_domain_system_address(cast):
    sent = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.paul_box.address], subject="S", text="t", request_mdn=True
    )
    entry = Entry.objects.get(mailbox=cast.paul_box, message=sent.message)
    assert send_mdn(entry)
    mdn = Message.objects.get(is_report=True)
    assert mdn.from_address == "ne-pas-repondre@patient.mssante.fr"
    assert Delivery.objects.get(message=sent.message).status == "read"


def test_a_receipt_only_counts_from_the_final_recipients_own_domain(cast):
    """Another operator cannot mark as read a message delivered to one of our patients."""
    from mailboxes.models import TrustedDomain

    TrustedDomain.objects.create(name="ch-ailleurs.mssante.fr")
    sent = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.paul_box.address], subject="S", text="t", request_mdn=True
    )
    forged = (
        "From: <doc@ch-ailleurs.mssante.fr>\r\nTo: <alice.martin@ch-troispics.mssante.fr>\r\n"
        "Message-ID: <mdn-2@ch-ailleurs.mssante.fr>\r\nAuto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\r\n\r\n'
        "--r\r\nContent-Type: text/plain\r\n\r\nLu.\r\n--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"Final-Recipient: rfc822;{cast.paul_box.address}\r\nOriginal-Message-ID: {sent.message.message_id}\r\n"
        "Disposition: automatic-action/MDN-sent-automatically; displayed\r\n--r--\r\n"
    ).encode()
    send_message(forged, envelope_from="", envelope_to=[cast.alice_box.address], source="smtp")
    assert Delivery.objects.get(message=sent.message).status == "delivered"
    assert not AuditEvent.objects.filter(action="message.read", message_id=sent.message.pk).exists()


def test_a_receipt_whose_sending_fails_stays_unsent_and_the_next_call_sends_it(cast, monkeypatch):
    import mailboxes.reports as reports

    sent = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Convocation", text="t", request_mdn=True
    )
    entry = Entry.objects.get(mailbox=cast.charlie_box, message=sent.message)
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("storage unavailable")
        return send_message(*args, **kwargs)

    monkeypatch.setattr(reports, "send_message", fails_once)
    with pytest.raises(OSError):
        send_mdn(entry)
    entry.refresh_from_db()
    assert entry.mdn_sent_at is None  # the claim went back with the failed send
    assert not Message.objects.filter(is_report=True).exists()
    assert not AuditEvent.objects.filter(action="message.mdn_sent").exists()

    assert send_mdn(entry) is True
    entry.refresh_from_db()
    assert entry.mdn_sent_at is not None and len(calls) == 2
    assert Message.objects.filter(is_report=True, report_type="disposition-notification").count() == 1
    assert Delivery.objects.get(message=sent.message, address=cast.charlie_box.address).status == "read"
    assert send_mdn(entry) is False and len(calls) == 2
