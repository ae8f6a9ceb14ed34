"""Automatic messages: read receipts (MDN, RFC 8098) and non-delivery reports (DSN, RFC 3464),
built by the system and sent through the one delivery path with an empty envelope sender
(RULES.md §3 "read receipt", "MSSanté headers"; issue 3 item 7).

Nothing automatic ever answers a message marked `Auto-Submitted` or another report (RFC 3834),
so two systems can never ping-pong reports. Both kinds carry `Auto-Submitted: auto-replied`.
"""

from __future__ import annotations

import io
import logging
import socket
from email.generator import BytesGenerator
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format

from audit.events import record
from audit.models import AuditEvent
from mailboxes.delivery import DeliveryRefused, send_message
from mailboxes.models import Entry, Mailbox, Message
from mailboxes.store import open_raw

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024


def system_address(domain: str) -> str:
    """The system sender of a local domain: the patient domain's no-reply address, or
    `mailer-daemon@<hosted domain>`."""
    domain = (domain or "").lower()
    if domain == settings.PATIENT_DOMAIN:
        return settings.PATIENT_SYSTEM_ADDRESS
    return f"mailer-daemon@{domain}"


def reporting_host() -> str:
    return getattr(settings, "SMTPD_HOSTNAME", "") or socket.getfqdn() or "localhost"


def _encode(value: str) -> str:
    """A header value, as RFC 2047 encoded words when it is not plain ASCII; never folded into
    a header injection (line breaks are removed)."""
    value = " ".join(str(value).split())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(maxlinelen=76)


def _address_header(address: str, name: str = "") -> str:
    return f"{_encode(name)} <{address}>" if name else f"<{address}>"


def _original_headers(original: Message) -> bytes:
    """The header block of the stored original, for the third part of a report."""
    try:
        with open_raw(original) as handle:
            head = handle.read(MAX_HEADER_BYTES)
    except (OSError, ValueError):
        return b""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = head.find(separator)
        if index >= 0:
            return head[: index + len(separator) // 2]
    return head


def _report(
    *, headers: list[tuple[str, str]], report_type: str, human: str, machine: str, original_headers: bytes
) -> bytes:
    """A `multipart/report` (RFC 6522) built with the standard `email` package: the words for a
    person (text/plain, UTF-8), the report for software (`message/<report_type>`; a
    delivery-status report is a list of field blocks, RFC 3464 §2.1) and, when known, the
    original's header block (`text/rfc822-headers`, its bytes as stored)."""
    report = MIMEMultipart("report", report_type=report_type)
    for name, value in headers:
        report[name] = value
    report.preamble = "This is a MIME-encapsulated report."
    report.attach(MIMEText(human, "plain", "utf-8"))
    status = EmailMessage(policy=compat32)
    status["Content-Type"] = f"message/{report_type}"
    if report_type == "delivery-status":
        # The generator writes each block as a header block, separated by blank lines.
        status.set_payload([_field_block(block) for block in machine.split("\r\n\r\n")])
    else:
        status.set_payload(machine.rstrip("\r\n") + "\r\n")
    report.attach(status)
    if original_headers:
        returned = EmailMessage(policy=compat32)
        returned["Content-Type"] = "text/rfc822-headers"
        # Kept byte for byte (an RFC 6532 header may hold UTF-8): the bytes generator writes
        # the surrogate-escaped text back as the same bytes.
        returned.set_payload(original_headers.rstrip(b"\r\n").decode("ascii", "surrogateescape") + "\n")
        report.attach(returned)
    out = io.BytesIO()
    BytesGenerator(out, policy=compat32.clone(linesep="\r\n")).flatten(report)
    return out.getvalue()


def _field_block(text: str) -> EmailMessage:
    block = EmailMessage(policy=compat32)
    for line in text.split("\r\n"):
        name, _, value = line.partition(":")
        block[name.strip()] = value.strip()
    return block


def _clean(value: str) -> str:
    return " ".join(str(value or "").split())


# --- MDN (RFC 8098) ----------------------------------------------------------------------------


def build_mdn(original: Message, recipient_mailbox: Mailbox) -> bytes:
    """The read receipt of `recipient_mailbox` for `original`: multipart/report;
    report-type=disposition-notification, sent to the original's Disposition-Notification-To."""
    if recipient_mailbox.is_patient:
        # A patient's receipt comes from the patient domain's system address (DESIGN.md).
        from_address, from_name = system_address(settings.PATIENT_DOMAIN), "Mon espace santé"
    else:
        from_address, from_name = recipient_mailbox.address, recipient_mailbox.display_name
    now = timezone.localtime()
    references = " ".join([*original.references.split(), original.message_id][-20:])
    headers = [
        ("From", _address_header(from_address, from_name)),
        ("To", _address_header(original.mdn_requested_to)),
        ("Subject", _encode(f"Accusé de lecture : {original.subject}")),
        ("Date", format_datetime(now)),
        ("Message-ID", make_msgid(domain=from_address.rsplit("@", 1)[-1])),
        ("In-Reply-To", original.message_id),
        ("References", references),
        ("Auto-Submitted", "auto-replied"),
    ]
    sent_on = date_format(timezone.localtime(original.date or original.created_at), "SHORT_DATETIME_FORMAT")
    human = (
        f"Votre message du {sent_on} adressé à {recipient_mailbox.address} "
        f"a été affiché par son destinataire le {date_format(now, 'SHORT_DATETIME_FORMAT')}.\n\n"
        "Cet accusé de lecture est envoyé automatiquement ; il ne garantit pas que le contenu "
        "du message a été lu ou compris.\n"
    )
    original_headers = _original_headers(original)
    # RFC 8098 §3.2.3: Original-Recipient only from the original's own Original-Recipient field.
    original_recipient = _header_value(original_headers, "original-recipient")
    # The reader opened the message (a person's action); the receipt then left by itself (§3.2.6).
    machine = "\r\n".join(
        [
            f"Reporting-UA: {reporting_host()}; MSSante",
            *([f"Original-Recipient: {original_recipient}"] if original_recipient else []),
            f"Final-Recipient: rfc822;{recipient_mailbox.address}",
            f"Original-Message-ID: {_clean(original.message_id)}",
            "Disposition: manual-action/MDN-sent-automatically; displayed",
        ]
    )
    return _report(
        headers=headers,
        report_type="disposition-notification",
        human=human,
        machine=machine,
        original_headers=original_headers,
    )


def _header_value(header_block: bytes, name: str) -> str:
    """One field of a stored header block, unfolded; "" when absent or not plain ASCII."""
    if not header_block:
        return ""
    value = BytesHeaderParser(policy=compat32).parsebytes(header_block).get(name)
    value = " ".join(str(value or "").split())
    return value[:500] if value.isascii() else ""


def may_answer(message: Message) -> bool:
    """RFC 3834: never answer an automatic message or a report."""
    return not (message.auto_submitted or message.is_report)


def send_mdn(entry: Entry) -> bool:
    """Send the read receipt asked by the entry's message, once (a conditional UPDATE on
    `mdn_sent_at` claims it), through the delivery path. True only for the call that sent it.

    The claim and the sending are one transaction: if sending fails (an error, not a refusal),
    the claim is rolled back with it, so the receipt stays unsent and a later call sends it. A
    refusal is final: the receipt stays marked and the refusal is audited."""
    message = entry.message
    if not message.mdn_requested_to or not may_answer(message):
        return False
    with transaction.atomic():
        claimed = Entry.objects.filter(pk=entry.pk, mdn_sent_at__isnull=True).update(mdn_sent_at=timezone.now())
        if not claimed:
            return False
        raw = build_mdn(message, entry.mailbox)
        try:
            result = send_message(raw, envelope_from="", envelope_to=[message.mdn_requested_to], source="system")
            outcome, detail = "ok", {"mdn": result.message.pk}
        except DeliveryRefused as exc:
            log.info("mdn refused: entry=%s code=%s", entry.pk, exc.code)
            outcome, detail = exc.code[:40], {}
        record(
            AuditEvent.Action.MDN_SENT,
            actor_label="system",
            obj=message,
            mailbox_id=entry.mailbox_id,
            message_id=message.pk,
            outcome=outcome,
            detail=detail,
        )
    return outcome == "ok"


# --- DSN (RFC 3464) ----------------------------------------------------------------------------


def build_dsn(original: Message, failures: list[tuple[str, str, str]], reporting_mta: str) -> bytes:
    """A non-delivery report for `original`: failures are (recipient, status "5.1.1", diagnostic)."""
    sender_box = original.sender_mailbox
    domain = sender_box.domain_name if sender_box is not None else original.envelope_from.rsplit("@", 1)[-1]
    from_address = system_address(domain)
    to_address = original.envelope_from or original.from_address
    headers = [
        ("From", _address_header(from_address, "Service de messagerie")),
        ("To", _address_header(to_address)),
        ("Subject", _encode(f"Message non distribué : {original.subject}")),
        ("Date", format_datetime(timezone.localtime())),
        ("Message-ID", make_msgid(domain=domain or "localhost")),
        ("In-Reply-To", original.message_id),
        ("References", original.message_id),
        ("Auto-Submitted", "auto-replied"),
    ]
    listed = "\n".join(f"- {recipient} : {_clean(diagnostic) or status}" for recipient, status, diagnostic in failures)
    sent_on = date_format(timezone.localtime(original.date or original.created_at), "SHORT_DATETIME_FORMAT")
    human = (
        f"Votre message du {sent_on} n'a pas pu être remis aux destinataires suivants :\n\n{listed}\n\n"
        "Vérifiez l'adresse ou contactez le destinataire par un autre moyen.\n"
    )
    blocks = [f"Reporting-MTA: dns; {_clean(reporting_mta)}\r\nArrival-Date: {format_datetime(original.created_at)}"]
    for recipient, status, diagnostic in failures:
        blocks.append(
            "\r\n".join(
                [
                    f"Final-Recipient: rfc822; {_clean(recipient)}",
                    "Action: failed",
                    f"Status: {_clean(status)}",
                    f"Diagnostic-Code: smtp; {_clean(diagnostic)}",
                ]
            )
        )
    return _report(
        headers=headers,
        report_type="delivery-status",
        human=human,
        machine="\r\n\r\n".join(blocks),
        original_headers=_original_headers(original),
    )


def send_dsn(original: Message, failures) -> Message | None:
    """The non-delivery report in the sender's box (`original.sender_mailbox`); None when there is
    no local sender box, nothing failed, or the original is automatic or a report (no loops)."""
    failures = list(failures)
    sender_box = original.sender_mailbox
    if not failures or not may_answer(original) or sender_box is None or not sender_box.is_active:
        return None
    raw = build_dsn(original, failures, reporting_host())
    try:
        result = send_message(raw, envelope_from="", envelope_to=[sender_box.address], source="system")
    except DeliveryRefused as exc:
        log.warning("dsn refused: message=%s code=%s", original.pk, exc.code)
        return None
    return result.message
