"""Unused professional mailboxes (RULES.md §5, CNIL authorisation AU-037): "a mailbox unused for a
year is deleted after warning its owner; the delay is a setting".

- A box is used when it sends or receives (the delivery path sets `last_used_at`) and when one of
  its users signs in (`mailboxes/signals.py`): a box that is only read is used.
- `warn_inactive_mailboxes` e-mails the owner of a nominative box, or the responsible professional
  and the managers of an organisational or applicative box, once, when the box has been unused for
  MAILBOX_INACTIVITY_DAYS - MAILBOX_INACTIVITY_WARNING_DAYS. The e-mail names the box, the date of
  deletion and how to keep it; nothing of its content.
- `delete_inactive_mailboxes` deletes a box unused for MAILBOX_INACTIVITY_DAYS and warned at least
  MAILBOX_INACTIVITY_WARNING_DAYS ago: the box is deactivated (its address stays reserved), its
  entries and memberships are deleted, and so are the messages no other box holds; their stored
  files go only when no other row shares their content hash (`mailboxes/store.py`).
- Patient boxes are never touched: the patient's space follows Mon espace santé's own lifecycle.

A warning is valid while the box stays unused: a use after `inactivity_warned_at` voids it
(whatever path set `last_used_at`), and signing in also clears it. Both functions claim each box
with a conditional UPDATE, so a second or concurrent run does nothing twice. Celery beat runs them
daily (`mailboxes/tasks.py`); `manage.py mailbox_housekeeping` does the same for cron installs.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Attachment, Entry, Mailbox, Membership, Message, Outbox

log = logging.getLogger(__name__)

PROFESSIONAL_KINDS = (Mailbox.Kind.NOMINATIVE, Mailbox.Kind.ORGANISATIONAL, Mailbox.Kind.APPLICATIVE)
# Boxes claimed per query, and entries deleted per statement inside one box.
BATCH = 200
ENTRY_BATCH = 1000
TEMPLATE = "emails/mailbox_inactivity"


def _days(name: str) -> datetime.timedelta:
    return datetime.timedelta(days=max(int(getattr(settings, name)), 0))


def _unused_since(cutoff: datetime.datetime) -> Q:
    """Not used after `cutoff` (a box never used counts from its creation)."""
    return Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff)


def _valid_warning() -> Q:
    """Warned, and not used since the warning."""
    return Q(inactivity_warned_at__isnull=False) & (
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=F("inactivity_warned_at"))
    )


def _professional_active() -> QuerySet[Mailbox]:
    return Mailbox.objects.filter(kind__in=PROFESSIONAL_KINDS, is_active=True)


def mailboxes_to_warn(now: datetime.datetime) -> QuerySet[Mailbox]:
    delay = max(_days("MAILBOX_INACTIVITY_DAYS") - _days("MAILBOX_INACTIVITY_WARNING_DAYS"), datetime.timedelta(0))
    return _professional_active().filter(_unused_since(now - delay)).exclude(_valid_warning())


def mailboxes_to_delete(now: datetime.datetime) -> QuerySet[Mailbox]:
    return (
        _professional_active()
        .filter(_unused_since(now - _days("MAILBOX_INACTIVITY_DAYS")))
        .filter(_valid_warning(), inactivity_warned_at__lte=now - _days("MAILBOX_INACTIVITY_WARNING_DAYS"))
    )


def _ids(queryset: QuerySet[Mailbox]) -> Iterator[int]:
    """The ids of `queryset` in batches by primary key: never one huge list in memory."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return
        yield from ids
        last = ids[-1]


# --- Warning -----------------------------------------------------------------------------------


def warning_recipients(box: Mailbox) -> list:
    """The accounts told of the coming deletion: the owner of a nominative box; the responsible
    professional and the managers of an organisational or applicative box (for an applicative box
    without any, those of its organisational return box)."""
    if box.kind == Mailbox.Kind.NOMINATIVE:
        users = [box.owner.user] if box.owner_id and box.owner.user_id else []
    else:
        users = _responsible_and_managers(box)
        if not users and box.kind == Mailbox.Kind.APPLICATIVE and box.return_mailbox_id:
            users = _responsible_and_managers(box.return_mailbox)
    seen: set[int] = set()
    unique = []
    for user in users:
        if user.pk not in seen and user.is_active and user.email:
            seen.add(user.pk)
            unique.append(user)
    return unique


def _responsible_and_managers(box: Mailbox) -> list:
    users = []
    if box.responsible_id and box.responsible.user_id:
        users.append(box.responsible.user)
    managers = box.memberships.filter(role=Membership.Role.MANAGER).select_related("user").order_by("pk")
    users.extend(membership.user for membership in managers)
    return users


def deletion_date(box: Mailbox, now: datetime.datetime) -> datetime.datetime:
    """The earliest moment the box may go: a full delay unused, and a full notice after warning."""
    last_use = box.last_used_at or box.created_at
    return max(last_use + _days("MAILBOX_INACTIVITY_DAYS"), now + _days("MAILBOX_INACTIVITY_WARNING_DAYS"))


def render_warning(box: Mailbox, deletion_on: datetime.datetime) -> tuple[str, str, str]:
    """Subject, text and HTML of the warning: the box's address and the date, no content."""
    context = {
        "address": box.address,
        "deletion_date": timezone.localtime(deletion_on).strftime("%d/%m/%Y"),
        "inactivity_days": settings.MAILBOX_INACTIVITY_DAYS,
        "sign_in_url": f"{settings.SITE_URL}{reverse('account_login')}",
    }
    subject = " ".join(render_to_string(f"{TEMPLATE}_subject.txt", context).split())
    return (
        subject,
        render_to_string(f"{TEMPLATE}_body.txt", context),
        render_to_string(f"{TEMPLATE}_body.html", context),
    )


def _warn_one(box_id: int, now: datetime.datetime) -> bool:
    # The claim and the sending are one transaction: a failed send leaves the box unwarned, and
    # the next run tries again.
    with transaction.atomic():
        claimed = mailboxes_to_warn(now).filter(pk=box_id).update(inactivity_warned_at=now)
        if not claimed:
            return False
        box = Mailbox.objects.select_related(
            "owner__user", "responsible__user", "return_mailbox__responsible__user"
        ).get(pk=box_id)
        users = warning_recipients(box)
        if not users:
            # Deleting without a warning is not allowed: the box waits until someone can be told.
            transaction.set_rollback(True)
            log.warning("inactive mailbox without anyone to warn: mailbox=%s", box_id)
            return False
        deletion_on = deletion_date(box, now)
        subject, text, html = render_warning(box, deletion_on)
        emails = []
        for user in users:
            email = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [user.email])
            email.attach_alternative(html, "text/html")
            emails.append(email)
        get_connection(fail_silently=False).send_messages(emails)
        record(
            AuditEvent.Action.MAILBOX_INACTIVITY_WARNED,
            actor_label="system",
            obj=box,
            mailbox_id=box.pk,
            detail={"user_ids": [user.pk for user in users], "deletion_on": deletion_on.date().isoformat()},
        )
    log.info("inactive mailbox warned: mailbox=%s recipients=%d", box_id, len(users))
    return True


def warn_inactive_mailboxes(now: datetime.datetime | None = None, *, dry_run: bool = False) -> int:
    """Warn, once, the owners of boxes soon to be deleted. Returns how many boxes were warned (with
    `dry_run`, how many would be, writing and sending nothing)."""
    now = now or timezone.now()
    if dry_run:
        return mailboxes_to_warn(now).count()
    warned = 0
    for box_id in _ids(mailboxes_to_warn(now)):
        try:
            warned += _warn_one(box_id, now)
        except Exception:
            # One unreachable relay or bad address must not stop the others; retried next run.
            log.exception("inactivity warning failed: mailbox=%s", box_id)
    return warned


# --- Deletion ----------------------------------------------------------------------------------


@dataclass
class _Deleted:
    entries: int = 0
    messages: int = 0


def _delete_one(box_id: int, now: datetime.datetime) -> _Deleted | None:
    """Deactivate the box and delete what it holds, in one transaction: all or nothing."""
    files: dict[str, tuple[type, str, str]] = {}
    deleted = _Deleted()
    with transaction.atomic():
        claimed = mailboxes_to_delete(now).filter(pk=box_id).update(is_active=False, used_bytes=0)
        if not claimed:
            return None
        while True:
            chunk = list(Entry.objects.filter(mailbox_id=box_id).values_list("pk", "message_id")[:ENTRY_BATCH])
            if not chunk:
                break
            Entry.objects.filter(pk__in=[pk for pk, _ in chunk]).delete()
            deleted.entries += len(chunk)
            deleted.messages += _delete_orphan_messages({message_id for _, message_id in chunk}, files)
        Membership.objects.filter(mailbox_id=box_id).delete()
        record(
            AuditEvent.Action.MAILBOX_DELETED_INACTIVE,
            actor_label="system",
            object_type="mailbox",
            object_id=box_id,
            mailbox_id=box_id,
            detail={"entries": deleted.entries, "messages": deleted.messages},
        )
        transaction.on_commit(lambda: remove_unreferenced_files(files))
    log.info("inactive mailbox deleted: mailbox=%s entries=%d messages=%d", box_id, deleted.entries, deleted.messages)
    return deleted


def _delete_orphan_messages(message_ids: set[int], files: dict) -> int:
    """Delete the messages of `message_ids` that no box holds any more and that are not waiting
    for the relay; note their stored files in `files` (name → (model, field, sha256))."""
    orphans = (
        Message.objects.filter(pk__in=message_ids, entries__isnull=True)
        .exclude(outbox__status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING])
        .values_list("pk", "raw", "sha256")
    )
    orphan_ids = []
    for pk, name, sha256 in orphans:
        orphan_ids.append(pk)
        if name:
            files[name] = (Message, "raw", sha256)
    if not orphan_ids:
        return 0
    for name, sha256 in Attachment.objects.filter(message_id__in=orphan_ids).values_list("file", "sha256"):
        if name:
            files[name] = (Attachment, "file", sha256)
    Message.objects.filter(pk__in=orphan_ids).delete()
    return len(orphan_ids)


def remove_unreferenced_files(files: dict[str, tuple[type, str, str]]) -> int:
    """Delete each stored file (name → (model, file field, sha256)) that no row names and no row
    shares the content hash of: files are written once per content hash and shared
    (`mailboxes/store.py`). Runs after the commit that deleted the rows."""
    removed = 0
    for name, (model, field, sha256) in files.items():
        if model.objects.filter(Q(**{field: name}) | Q(sha256=sha256)).exists():
            continue
        try:
            default_storage.delete(name)
            removed += 1
        except Exception:
            log.exception("stored file not removed: %s", name)
    return removed


def delete_inactive_mailboxes(now: datetime.datetime | None = None, *, dry_run: bool = False) -> int:
    """Delete the boxes unused for the full delay whose owners were warned in time. Returns how
    many boxes were deleted (with `dry_run`, how many would be, writing nothing)."""
    now = now or timezone.now()
    if dry_run:
        return mailboxes_to_delete(now).count()
    deleted = 0
    for box_id in _ids(mailboxes_to_delete(now)):
        try:
            deleted += _delete_one(box_id, now) is not None
        except Exception:
            log.exception("inactive mailbox deletion failed: mailbox=%s", box_id)
    return deleted
