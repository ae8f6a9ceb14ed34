"""The organisational return box as a work queue (issue 10 §3; RULES.md §2 and §4).

A patient answers what an applicative box sent; the answer reaches the organisational box
paired with it (`Mailbox.return_mailbox`, given as `Reply-To`). `collect` matches each such
reply to the original send — its `In-Reply-To`, then its `References`, then the latest message
the applicative boxes sent to that patient — and enters it in the queue "à traiter". A member
(webmail page) or the DPI (API) files it: "classé", with an optional note.

`collect` runs after each delivery commit (the receiver of `audit.chain.events_committed` in
`api.hooks`) and from the sweeper `api.tasks.collect_return_replies`, which catches what a
crashed process missed. A reply is entered once (one row per entry).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from api.models import ReturnReply
from audit.events import record
from health_record.models import Document
from mailboxes.models import Attachment, Delivery, Entry, Folder, Mailbox, Message
from patients.models import Patient

SWEEP_WINDOW = datetime.timedelta(days=2)
FILED = "return.filed"


def return_box_ids(ids=None) -> set[int]:
    boxes = Mailbox.objects.filter(kind=Mailbox.Kind.ORGANISATIONAL, applicative_mailboxes__isnull=False)
    if ids is not None:
        boxes = boxes.filter(pk__in=ids)
    return set(boxes.values_list("pk", flat=True))


def candidates(box_ids, message_ids=None, since=None):
    entries = Entry.objects.filter(
        mailbox_id__in=box_ids,
        message__sender_mailbox__kind=Mailbox.Kind.PATIENT,
        folder__role=Folder.Role.INBOX,
    ).exclude(pk__in=ReturnReply.objects.values("entry_id"))
    if message_ids is not None:
        entries = entries.filter(message_id__in=message_ids)
    if since is not None:
        entries = entries.filter(received_at__gte=since)
    return entries.select_related("message", "message__sender_mailbox")


def collect(box_ids=None, message_ids=None, since=None) -> int:
    """Enter the patients' replies not yet in the queue; returns how many were entered."""
    box_ids = return_box_ids(box_ids)
    if not box_ids:
        return 0
    added = 0
    for entry in candidates(box_ids, message_ids, since)[:500]:
        if enter(entry) is not None:
            added += 1
    return added


def enter(entry: Entry) -> ReturnReply | None:
    message = entry.message
    apps = list(Mailbox.objects.filter(return_mailbox_id=entry.mailbox_id, kind=Mailbox.Kind.APPLICATIVE))
    patient = Patient.objects.filter(mailbox_id=message.sender_mailbox_id).first()
    original, matched_by = match(message, apps, patient)
    if original is None:
        return None  # an ordinary conversation with the organisational box itself
    try:
        with transaction.atomic():
            return ReturnReply.objects.create(
                mailbox_id=entry.mailbox_id,
                entry=entry,
                message=message,
                original=original,
                applicative=original.sender_mailbox,
                patient=patient,
                matched_by=matched_by,
            )
    except IntegrityError:  # entered meanwhile by the sweeper or another process
        return None


def _sent_with_id(sent, message_id: str, patient: Patient | None) -> Message | None:
    """The latest sent message of that Message-ID, the one delivered to `patient` first: a
    message a mail client sent to several patients is one stored copy per patient
    (mailboxes/fanout.py), all with the client's Message-ID."""
    same = sent.filter(message_id=message_id).order_by("-id")
    if patient is not None and patient.mailbox_id:
        own = same.filter(deliveries__mailbox_id=patient.mailbox_id).first()
        if own is not None:
            return own
    return same.first()


def match(message: Message, apps: list[Mailbox], patient: Patient | None) -> tuple[Message | None, str]:
    if not apps:
        return None, ""
    sent = Message.objects.filter(sender_mailbox__in=apps)
    if message.in_reply_to:
        found = _sent_with_id(sent, message.in_reply_to, patient)
        if found is not None:
            return found, "in_reply_to"
    for reference in reversed((message.references or "").split()):
        found = _sent_with_id(sent, reference, patient)
        if found is not None:
            return found, "references"
    if patient is not None and patient.mailbox_id:
        delivery = (
            Delivery.objects.filter(mailbox_id=patient.mailbox_id, message__sender_mailbox__in=apps)
            .select_related("message")
            .order_by("-id")
            .first()
        )
        if delivery is not None:
            return delivery.message, "patient"
    return None, ""


def queue(box: Mailbox, status: str | None = ReturnReply.Status.TO_PROCESS):
    replies = ReturnReply.objects.filter(mailbox=box).select_related("message", "patient", "original")
    if status:
        replies = replies.filter(status=status)
    return replies.order_by("-id")


@dataclass
class ReplyDocument:
    attachment_id: int
    filename: str
    content_type: str
    size: int
    kind: str  # "profile", "health", "admin", "device"
    kind_label: str


KIND_LABELS = {
    "profile": "profil médical (PDF)",
    "health": "document de santé",
    "admin": "document administratif",
    "device": "fichier de l'appareil",
}


def documents(reply: ReturnReply) -> list[ReplyDocument]:
    """The reply's attachments by kind: the profile PDF, documents of the patient's record
    (health or administrative, recognised by content hash), files from the patient's device."""
    attachments = list(Attachment.objects.filter(message_id=reply.message_id, is_inline=False).order_by("position"))
    by_hash = {}
    if reply.patient_id:
        by_hash = dict(
            Document.objects.filter(
                patient_id=reply.patient_id, sha256__in=[a.sha256 for a in attachments]
            ).values_list("sha256", "kind")
        )
    result = []
    for a in attachments:
        if a.sha256 in by_hash:
            kind = "health" if by_hash[a.sha256] == Document.Kind.HEALTH else "admin"
        elif a.filename.startswith("profil-medical-") and a.content_type == "application/pdf":
            kind = "profile"
        else:
            kind = "device"
        result.append(ReplyDocument(a.pk, a.filename, a.content_type, a.size, kind, KIND_LABELS[kind]))
    return result


def file_reply(reply: ReturnReply, *, user=None, key=None, note: str = "") -> bool:
    """Mark the reply "classé". False when it was filed already (nothing changes)."""
    now = timezone.now()
    changed = ReturnReply.objects.filter(pk=reply.pk, status=ReturnReply.Status.TO_PROCESS).update(
        status=ReturnReply.Status.FILED,
        filed_at=now,
        filed_by=user if getattr(user, "is_authenticated", False) else None,
        filed_by_key=key,
        note=(note or "")[:2000],
    )
    if changed:
        Entry.objects.filter(pk=reply.entry_id, done_at__isnull=True).update(
            done_at=now, done_by=user if getattr(user, "is_authenticated", False) else None
        )
        record(
            FILED,
            actor=user,
            actor_label=f"api-key:{key.pk}" if key is not None else "",
            object_type="returnreply",
            object_id=reply.pk,
            mailbox_id=reply.mailbox_id,
            message_id=reply.message_id,
        )
    reply.refresh_from_db()
    return bool(changed)


def sweep() -> int:
    """The sweeper: replies of the last two days that no receiver entered."""
    return collect(since=timezone.now() - SWEEP_WINDOW)
