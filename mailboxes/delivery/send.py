"""`send_message`: the one function every message goes through (DESIGN.md "One message store,
one delivery path"; RULES.md §1–3), whoever sends it — the webmail, the patient space, the API,
the SMTP gateway and the system (MDNs, DSNs, automatic returns). A page of steps; each step's
rules are in the module it names.
"""

from __future__ import annotations

import logging
import uuid

from django.utils.translation import gettext_lazy

from audit.events import record_lasting
from mailboxes.delivery import batch, senders
from mailboxes.delivery.decisions import (
    DeliveryRefused,
    DeliveryResult,
    refuse_no_recipient,
    refuse_over_quota,
    refuse_unknown,
)
from mailboxes.delivery.events import refusal_event
from mailboxes.delivery.planning import Plan, normalise_recipients, plan_recipients
from mailboxes.delivery.writing import (
    QuotaRace,
    StoredFiles,
    Submission,
    store_files,
    tell_policy_refused,
    write_message,
)
from mailboxes.mime import ParsedMessage
from mailboxes.models import Mailbox, Message
from mailboxes.patient_domain import Envelope
from mailboxes.trust import classify_domains, domain_of

log = logging.getLogger("mailboxes.delivery")

# Where a message comes from (the `source` of `send_message`, the `actor_label` of its
# `message.submitted` event, the `sent_source_<source>` statistics), with its French label.
SOURCE_LABELS = {
    "webmail": gettext_lazy("messagerie web"),
    "smtp": gettext_lazy("passerelle SMTP"),
    "submission": gettext_lazy("logiciel de messagerie"),
    "api": gettext_lazy("API"),
    "patient": gettext_lazy("patients"),
    "system": gettext_lazy("envois automatiques"),
}
SOURCES = frozenset(SOURCE_LABELS)


def send_message(
    raw: bytes,
    *,
    envelope_from: str,
    envelope_to: list[str],
    source: str,
    actor=None,
    sender_mailbox: Mailbox | None = None,
    trace: bytes = b"",
) -> DeliveryResult:
    """Deliver `raw` (RFC 5322 bytes) to `envelope_to`. Returns what was delivered here, queued
    for other operators and refused; raises `DeliveryRefused` (nothing stored) when no recipient
    accepts it. `sender_mailbox` is the local box that sends, None for mail from outside.
    `trace` (the SMTP gateway's `Return-Path:` and `Received:` lines, RFC 5321 §4.4) is stored
    in front of `raw`; the size limits apply to `raw`, what the peer sent."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    try:
        submission, plan = accept(raw, envelope_from, envelope_to, source, actor, sender_mailbox)
    except DeliveryRefused as refusal:
        raise refused_whole(refusal, source, actor, sender_mailbox, len(envelope_to)) from None
    if plan.existing is not None:
        log.info("delivery duplicate: message=%s source=%s boxes=%d", plan.existing.pk, source, len(plan.duplicates))
        return DeliveryResult(message=plan.existing, refused=submission.refused)
    # The trace lines are written to the file in front of the bytes, never joined to them in memory.
    submission.trace = trace
    files = store_files(submission.raw, submission.parsed, prefix=trace)
    try:
        message = write(submission, files, plan)
    except DeliveryRefused as refusal:
        raise refused_whole(refusal, source, actor, sender_mailbox, len(envelope_to)) from None
    log.info(
        "delivery ok: message=%s source=%s delivered=%d queued=%d refused=%d",
        message.pk,
        source,
        len(plan.delivered),
        len(plan.queued),
        len(submission.refused),
    )
    return DeliveryResult(message=message, delivered=plan.delivered, queued=plan.queued, refused=submission.refused)


def accept(raw, envelope_from, envelope_to, source, actor, sender_mailbox) -> tuple[Submission, Plan]:
    """The checks before anything is stored: sender, size, parsing, hops, identity, then each
    recipient. DeliveryRefused when nobody accepts the message."""
    sender = senders.normalised_sender(envelope_from)
    senders.check_sending_box(sender, sender_mailbox)
    parsed = senders.parse_within_limit(raw, sender_mailbox)
    senders.check_header_block(parsed)
    senders.check_hops(parsed)
    if not envelope_to:
        raise senders.refused(refuse_no_recipient())
    recipients, refused = normalise_recipients(envelope_to)
    classes = classify_domains(senders.domains_to_classify(parsed, sender, recipients))
    # Mail that came in over SMTP is never relayed out: only local senders reach other operators.
    local_sender = sender_mailbox is not None or source == "system"
    senders.check_identity(parsed, sender, sender_mailbox, local_sender, classes)
    submission = Submission(
        raw=raw,
        parsed=parsed,
        envelope=envelope_for(parsed, sender, sender_mailbox, len(raw)),
        sender=sender,
        recipients=recipients,
        source=source,
        actor=actor,
        sender_mailbox=sender_mailbox,
        refused=refused,
    )
    # A peer that did not get our 250 (timeout, lost connection) sends the message again, with
    # the same Message-ID: a box that already holds it does not get a second copy.
    dedupe = parsed.message_id if source == "smtp" else ""
    plan = plan_recipients(
        recipients,
        submission.envelope,
        local_sender=local_sender,
        size=len(raw),
        classes=classes,
        dedupe_message_id=dedupe,
    )
    if plan.duplicates and not plan.accepts_any:
        plan.existing = existing_copy(submission, plan)
        if plan.existing is None:  # the message of that Message-ID was purged since: plan again
            plan = plan_recipients(
                recipients, submission.envelope, local_sender=local_sender, size=len(raw), classes=classes
            )
    submission.refused.update(plan.refused)
    if not plan.accepts_any and plan.existing is None:
        tell_policy_refused(submission.envelope, None, submission.refused)
        first = next(iter(submission.refused.values()), None) or refuse_unknown()
        raise DeliveryRefused(
            first.code, first.reason, refused=submission.refused, message_ids=refused_message_ids(submission)
        )
    return submission, plan


def refused_message_ids(submission: Submission) -> dict[str, str]:
    """Each refused recipient → the Message-ID of the message refused (its automatic return's
    `In-Reply-To`)."""
    return dict.fromkeys(submission.refused, submission.envelope.message_id)


def envelope_for(parsed: ParsedMessage, sender: str, sender_mailbox: Mailbox | None, size: int) -> Envelope:
    """What the patient-domain policy may know of the message: no body, no attachment."""
    message_id = parsed.message_id or f"<{uuid.uuid4().hex}@{domain_of(sender) if sender else 'mssante.invalid'}>"
    return Envelope(
        sender_address=sender,
        sender_mailbox=sender_mailbox,
        subject=parsed.subject,
        size=size,
        message_id=message_id,
        in_reply_to=parsed.in_reply_to,
        references=tuple(parsed.references),
        auto_submitted=parsed.auto_submitted,
        is_report=parsed.is_report,
        x_mss_headers=dict(parsed.x_mss_headers),
    )


def existing_copy(submission: Submission, plan: Plan) -> Message | None:
    return (
        Message.objects.filter(
            message_id=submission.envelope.message_id, entries__mailbox__in=list(plan.duplicates.values())
        )
        .order_by("-id")
        .first()
    )


def write(submission: Submission, files: StoredFiles, plan: Plan) -> Message:
    """The rows, in one transaction, tried twice: a recipient box that filled up since the plan
    rolls the first attempt back; the second locks the boxes and refuses those now full."""
    for attempt in (1, 2):
        try:
            message = write_message(submission, files, plan, recheck_room=attempt == 2)
        except QuotaRace:
            if not batch.savepoint_per_message():
                raise  # nothing to roll back to: the caller's transaction goes (mailboxes/delivery/batch.py)
            continue
        if message is None:  # under the lock, every recipient box turned out full
            tell_policy_refused(submission.envelope, None, submission.refused)
            first = next(iter(submission.refused.values()))
            raise DeliveryRefused(
                first.code, first.reason, refused=submission.refused, message_ids=refused_message_ids(submission)
            )
        return message
    # A box still changed under the lock (deleted, say): a temporary refusal, the peer retries.
    raise DeliveryRefused("over_quota", refuse_over_quota().reason, 452, submission.refused)


def refused_whole(refusal: DeliveryRefused, source: str, actor, sender_mailbox, recipients: int) -> DeliveryRefused:
    """A whole message refused: one audit event (no message stored, so none is named), kept
    even when the caller's transaction rolls back (`record_lasting`)."""
    sender_box_id = sender_mailbox.pk if sender_mailbox is not None else None
    record_lasting(
        **refusal_event(refusal.code, actor=actor, source=source, sender_box_id=sender_box_id, recipients=recipients)
    )
    log.info("delivery refused: code=%s source=%s sender_box=%s", refusal.code, source, sender_box_id)
    return refusal
