"""Automatic returns of the patient domain (RULES.md §3), sent back to the sender's box as
messages through the one delivery path, from the patient domain's system address.

1. closed space, 2. patient not found (no space, opposed, wrong INS), 3. over 25 MB, plus the
INS-qualification refusal and the acknowledgement of the test address. Each says in French what
happened and what to do, carries no health content (never the subject or body of the original),
is marked `Auto-Submitted: auto-replied` (RFC 3834) and has a Message-ID derived from what it
answers, so sending it twice stores it once.
"""

import hashlib
import logging
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format

from audit.events import record
from mailboxes import queueing
from mailboxes.delivery import DeliveryRefused, send_message
from mailboxes.models import Message
from patients.models import PendingReturn
from patients.policy import REFUSALS, TEST_ADDRESS_CODE, contains_test, system_address, test_address

log = logging.getLogger(__name__)

SUBJECT_RETURN = "Message non distribué : retour automatique de Mon espace santé"
SUBJECT_TEST = "Accusé de réception : adresse de test de Mon espace santé"


def from_header(label: str = "Mon espace santé") -> str:
    return formataddr((label, system_address()))


def stable_message_id(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"<auto.{digest}@{settings.PATIENT_DOMAIN}>"


def already_sent(message_id: str) -> bool:
    return Message.objects.filter(message_id__in=[message_id, message_id.strip("<>")]).exists()


def _base(to: str, subject: str, message_id: str, original_message_id: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = from_header()
    mail["To"] = to
    mail["Subject"] = subject
    mail["Date"] = format_datetime(timezone.now())
    mail["Message-ID"] = message_id
    mail["Auto-Submitted"] = "auto-replied"
    if original_message_id:
        original = original_message_id if original_message_id.startswith("<") else f"<{original_message_id}>"
        mail["In-Reply-To"] = original
        mail["References"] = original
    return mail


def build_return(
    code: str, sender: str, recipient: str, original_message_id: str, refused_at: str
) -> tuple[str, bytes]:
    """The automatic return for one refused recipient: (Message-ID, raw bytes)."""
    message_id = stable_message_id("return", code, sender, recipient, original_message_id)
    when = parse_datetime(refused_at) or timezone.now()
    when_text = date_format(timezone.localtime(when), "SHORT_DATETIME_FORMAT")
    refusal = REFUSALS.get(code)
    if refusal is None or not refusal.happened:
        refusal = REFUSALS["patient_not_found"]
    happened, to_do = refusal.happened, refusal.to_do
    text = (
        "Bonjour,\n\n"
        f"Votre message du {when_text} adressé à {recipient} n'a pas été remis à son destinataire.\n\n"
        f"Ce qui s'est passé : {happened}\n\n"
        f"Que faire : {to_do}\n\n"
        "Les autres destinataires éventuels de votre message ne sont pas concernés par ce retour.\n"
        "Ce message est envoyé automatiquement par la messagerie de Mon espace santé ; "
        "n'y répondez pas.\n"
    )
    mail = _base(sender, SUBJECT_RETURN, message_id, original_message_id)
    mail.set_content(text)
    return message_id, mail.as_bytes()


def build_test_acknowledgement(sender: str, original_message_id: str) -> tuple[str, bytes]:
    message_id = stable_message_id("test", sender, original_message_id)
    text = (
        "Bonjour,\n\n"
        f"Votre message de test adressé à {test_address()} a bien été reçu par la messagerie de "
        "Mon espace santé.\n\n"
        "Votre messagerie peut donc écrire aux patients. Ce message ne sera lu par personne.\n"
        "Ce message est envoyé automatiquement ; n'y répondez pas.\n"
    )
    mail = _base(sender, SUBJECT_TEST, message_id, original_message_id)
    mail.set_content(text)
    return message_id, mail.as_bytes()


def send_system_message(message_id: str, raw: bytes, to: str) -> bool:
    if already_sent(message_id):
        return False
    # RFC 3834 §3.3 / RULES.md §7: automatic answers leave with the null envelope sender.
    send_message(raw, envelope_from="", envelope_to=[to], source="system")
    return True


def send_return(code: str, sender: str, recipient: str, original_message_id: str, refused_at: str) -> bool:
    if code == TEST_ADDRESS_CODE:
        message_id, raw = build_test_acknowledgement(sender, original_message_id)
    else:
        message_id, raw = build_return(code, sender, recipient, original_message_id, refused_at)
    sent = send_system_message(message_id, raw, sender)
    log.info("automatic return: code=%s sent=%s", code, sent)
    return sent


def send_pending_return(pending_return_id: int) -> int | None:
    """The task's entry point: the refusal stored a `PendingReturn` row and queued its id.
    Claimed by a conditional update; the return is delivered and the row marked sent in one
    transaction, and its Message-ID is derived from what it answers, so a run after a killed
    worker never stores it twice. Returns the seconds before a retry after a temporary failure
    (the database or the storage), else None."""
    if not queueing.claim(PendingReturn, pending_return_id):
        return None
    pending = PendingReturn.objects.get(pk=pending_return_id)
    try:
        with transaction.atomic():
            sent = send_return(
                pending.code,
                pending.sender,
                pending.recipient,
                pending.original_message_id,
                pending.refused_at.isoformat(),
            )
            queueing.finish(PendingReturn, pending.pk, PendingReturn.Status.SENT, sent_at=timezone.now())
    except DeliveryRefused as refusal:
        error = f"{refusal.smtp_code} {refusal.code}"
        if 400 <= refusal.smtp_code < 500:  # a box full for a moment: retried with backoff
            return queueing.retry_later(PendingReturn, pending.pk, pending.attempts, error)
        # The sender's box refuses it for good (gone, closed): recorded, never retried.
        queueing.finish(PendingReturn, pending.pk, PendingReturn.Status.FAILED, error)
        record(
            "automatic_return.failed",
            actor_label="celery",
            object_type="pending_return",
            object_id=pending.pk,
            outcome="failed",
            detail={"code": pending.code, "error": error[:120], "attempt": pending.attempts},
        )
        log.warning("automatic return failed: id=%s attempt=%s", pending.pk, pending.attempts)
        return None
    except (DatabaseError, OSError) as exc:
        retry_in = queueing.retry_later(PendingReturn, pending.pk, pending.attempts, type(exc).__name__)
        log.warning("automatic return retry: id=%s attempt=%s in=%ss", pending.pk, pending.attempts, retry_in)
        return retry_in
    log.info("automatic return: id=%s sent=%s", pending.pk, sent)
    return None


def sweep_returns() -> dict[str, int]:
    """Periodic (beat, `runscheduler`): returns a lost task or a killed worker left behind."""
    return queueing.sweep(PendingReturn, "patients.tasks.send_automatic_return", queue=settings.RELAY_QUEUE)


def answer_test_address(message: Message) -> bool:
    """The test address (RULES.md §3): subject AND body containing `TEST` get the predefined
    acknowledgement back in the sending box; anything else gets nothing. (Tasks queued by the
    version before `PendingReturn` rows carried it; `policy.queue_test_answer` writes a row now.)"""
    if message.auto_submitted or message.is_report:
        return False
    if not (contains_test(message.subject) and contains_test(message.text_body or message.html_body)):
        return False
    sender = message.envelope_from or message.from_address
    message_id, raw = build_test_acknowledgement(sender, message.message_id)
    return send_system_message(message_id, raw, sender)
