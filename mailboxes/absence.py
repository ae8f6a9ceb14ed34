"""The absence message of a box (RULES.md §6 "absence messages", §7; RFC 3834, RFC 5230 §4).

While a box's absence message is on and today falls within its dates, a new message gets one
reply per sender and per period, sent through the one delivery path with the null envelope
sender and `Auto-Submitted: auto-replied`. Never answered: reports (MDN, DSN), automatic mail
(`Auto-Submitted`, mailing lists: `List-*`, `Precedence: bulk/list/junk`,
`X-Auto-Response-Suppress`), a message over the hop limit (a loop, `SMTP_HOP_LIMIT`), the null sender, system senders (mailer-daemon, postmaster,
no-reply), the box itself, a message where the box is neither in To nor in Cc (a copy in Bcc,
a list, a forward), and patients unless the box's owner chose to answer them.

The delivery path decides (`mailboxes.box_actions`) and queues an `IncomingAction`; the task
calls `send_absence_reply` with the message, which checks the headers and claims the
(box, period, sender) row before sending: a second run, or a second message of the same sender,
sends nothing.
"""

from __future__ import annotations

import logging
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import record
from audit.models import AuditEvent
from mailboxes.delivery import is_looping
from mailboxes.models import AbsenceMessage, AbsenceReply, IncomingAction, Mailbox, Message
from mailboxes.patient_domain import is_patient_address
from mailboxes.store import open_raw

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
# Local parts that are never a person (RFC 5230 §4.6 lists the usual ones).
SYSTEM_LOCAL_PART_RE = re.compile(
    r"^(mailer-daemon|postmaster|listserv|majordomo|owner-.*|.*-request|.*no-?reply.*|ne-pas-repondre.*)$"
)
LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "list-help", "list-owner")


def stored_headers(message: Message):
    """The header block of the stored message, parsed (an empty one if unreadable)."""
    try:
        with open_raw(message) as handle:
            head = handle.read(MAX_HEADER_BYTES)
    except (OSError, ValueError):
        head = b""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = head.find(separator)
        if index >= 0:
            head = head[:index]
            break
    return BytesHeaderParser().parsebytes(head + b"\r\n\r\n")


def is_automatic(headers) -> bool:
    """Mail sent by a program or a list (RFC 3834 §2, RFC 2369, RFC 2919)."""
    auto = str(headers.get("auto-submitted", "") or "").split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return True
    if any(headers.get(name) is not None for name in LIST_HEADERS):
        return True
    if str(headers.get("precedence", "") or "").strip().lower() in ("bulk", "list", "junk"):
        return True
    suppress = str(headers.get("x-auto-response-suppress", "") or "").lower()
    return "all" in suppress or "oof" in suppress


def reason_not_to_answer(message: Message, box: Mailbox, absence: AbsenceMessage, headers) -> str:
    """A short code saying why no reply goes out, or "" when one should."""
    sender = (message.envelope_from or "").lower()
    if not sender:
        return "null_sender"
    if message.is_report:
        return "report"
    if message.auto_submitted or is_automatic(headers):
        return "automatic"
    if is_looping(headers):
        return "looping"
    if sender == box.address or message.sender_mailbox_id == box.pk:
        return "own_message"
    if SYSTEM_LOCAL_PART_RE.match(sender.split("@", 1)[0]) or sender == settings.PATIENT_SYSTEM_ADDRESS:
        return "system_sender"
    if is_patient_address(sender) and not absence.reply_to_patients:
        return "patient"
    addressed = {p.get("address", "").lower() for p in list(message.to or []) + list(message.cc or [])}
    if box.address not in addressed:
        return "not_addressed"
    if not absence.enabled:
        return "switched_off"
    return ""


def build_reply(box: Mailbox, absence: AbsenceMessage, message: Message, to: str) -> bytes:
    reply = EmailMessage(policy=SMTP)
    local, _at, domain = box.address.rpartition("@")
    reply["From"] = Address(display_name=" ".join((box.display_name or "").split()), username=local, domain=domain)
    recipient_local, _at, recipient_domain = to.rpartition("@")
    reply["To"] = Address(username=recipient_local, domain=recipient_domain)
    subject = absence.subject.strip() or _("Réponse automatique : %(s)s") % {"s": message.subject or _("(sans objet)")}
    reply["Subject"] = " ".join(subject.split())
    reply["Date"] = format_datetime(timezone.localtime())
    reply["Message-ID"] = make_msgid(domain=box.domain_name)
    reply["Auto-Submitted"] = "auto-replied"
    reply["X-Auto-Response-Suppress"] = "All"  # Exchange-style responders stay quiet too
    if message.message_id:
        reply["In-Reply-To"] = message.message_id
        reply["References"] = " ".join([*message.references.split(), message.message_id][-20:])
    reply.set_content(absence.text or "", charset="utf-8")
    return reply.as_bytes()


def send_absence_reply(action: IncomingAction) -> str:
    """The task's work for one absence action (already claimed): returns the outcome code."""
    from mailboxes.delivery import DeliveryRefused, send_message

    box, message = action.mailbox, action.message
    absence = AbsenceMessage.objects.filter(mailbox=box).first()
    if absence is None:
        return "switched_off"
    reason = reason_not_to_answer(message, box, absence, stored_headers(message))
    if reason:
        return reason
    sender = message.envelope_from.lower()
    with transaction.atomic():
        try:
            with transaction.atomic():
                AbsenceReply.objects.create(mailbox=box, period=absence.period, sender=sender)
        except IntegrityError:
            return "already_answered"
        raw = build_reply(box, absence, message, sender)
        try:
            result = send_message(raw, envelope_from="", envelope_to=[sender], source="system")
        except DeliveryRefused as refusal:
            # The sender's side refuses an answer: the claim stays, nobody retries in a loop.
            log.info("absence reply refused: action=%s code=%s", action.pk, refusal.code)
            return f"refused:{refusal.code}"[:60]
        record(
            AuditEvent.Action.ABSENCE_REPLIED,
            actor_label="system",
            object_type="message",
            object_id=result.message.pk,
            mailbox_id=box.pk,
            message_id=message.pk,
            detail={"reply": result.message.pk, "action": action.pk},
        )
    return "sent"


# --- Settings (the webmail's page calls this) --------------------------------------------------


def save_absence(mailbox: Mailbox, actor, *, enabled, starts_on, ends_on, subject, text, reply_to_patients):
    """Create or change the box's absence message. Changing the dates, or switching it on again,
    opens a new period: every sender gets one reply again."""
    with transaction.atomic():
        absence = AbsenceMessage.objects.select_for_update().filter(mailbox=mailbox).first()
        new_period = absence is not None and (
            (enabled and not absence.enabled) or (starts_on, ends_on) != (absence.starts_on, absence.ends_on)
        )
        if absence is None:
            absence = AbsenceMessage(mailbox=mailbox)
        absence.enabled = bool(enabled)
        absence.starts_on, absence.ends_on = starts_on, ends_on
        absence.subject = " ".join((subject or "").split())[:200]
        absence.text = text or ""
        absence.reply_to_patients = bool(reply_to_patients)
        if new_period:
            absence.period += 1
        absence.save()
        record(
            AuditEvent.Action.BOX_SETTINGS_CHANGED,
            actor=actor,
            object_type="absence",
            object_id=absence.pk,
            mailbox_id=mailbox.pk,
            detail={"change": "absence", "enabled": absence.enabled, "period": absence.period},
        )
    return absence
