"""Shared organisational boxes (issue 6 §3, RULES.md §2): who else read a message, and
claim / assign / done, visible to every member; each action leaves an audit event.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Entry, EntryView, Mailbox, Membership
from mailboxes.reading import SHARED_KINDS, Opened, record_opening

User = get_user_model()


def is_shared(mailbox: Mailbox) -> bool:
    return mailbox.kind in SHARED_KINDS


def is_handled(entry: Entry) -> bool:
    """Whether claim / assign / done apply: mail a shared box received, not what it sent nor a
    report (read receipt, non-delivery report), which nobody has to handle (issue 16 item 13)."""
    message = entry.message
    return is_shared(entry.mailbox) and message.sender_mailbox_id != entry.mailbox_id and not message.is_report


def members(mailbox: Mailbox):
    return User.objects.filter(memberships__mailbox=mailbox).order_by("last_name", "first_name", "username")


def open_entry(entry: Entry, user, ip: str | None = None, via: str = "webmail") -> None:
    """The user saw the message — its page, its HTML body alone, its headers, its print view,
    or quoted in a reply or forward (`via`). Every way to see a message is a read (issue 15
    item 21): `mailboxes.reading.record_opening`."""
    record_opening(user, [Opened.of(entry, shared=is_shared(entry.mailbox))], ip=ip, via=via)
    entry.seen = True


def readers(entry: Entry):
    return EntryView.objects.filter(entry=entry).select_related("user").order_by("first_at")


def _check_member(mailbox: Mailbox, user) -> None:
    if not Membership.objects.filter(mailbox=mailbox, user=user).exists():
        raise ValidationError(_("Cette personne n'est pas membre de la boîte %(a)s.") % {"a": mailbox.address})


@transaction.atomic
def assign_entry(entry: Entry, assignee, actor) -> Entry:
    """Claim (assignee == actor), assign to another member, or release (assignee None)."""
    if not is_shared(entry.mailbox):
        raise ValidationError(_("Seuls les messages d'une boîte partagée s'attribuent."))
    if not is_handled(entry):
        raise ValidationError(_("Un message envoyé ou un accusé de lecture ne s'attribue pas."))
    if assignee is not None:
        _check_member(entry.mailbox, assignee)
    entry.assigned_to = assignee
    entry.save(update_fields=["assigned_to"])
    record(
        AuditEvent.Action.ASSIGNED,
        actor=actor,
        obj=entry,
        mailbox_id=entry.mailbox_id,
        message_id=entry.message_id,
        detail={"assigned_to": assignee.pk if assignee else None},
    )
    return entry


@transaction.atomic
def mark_done(entry: Entry, actor, *, done: bool = True) -> Entry:
    if not is_shared(entry.mailbox):
        raise ValidationError(_("Seuls les messages d'une boîte partagée se marquent comme traités."))
    if not is_handled(entry):
        raise ValidationError(_("Un message envoyé ou un accusé de lecture n'est pas à traiter."))
    entry.done_at = timezone.now() if done else None
    entry.done_by = actor if done else None
    entry.save(update_fields=["done_at", "done_by"])
    record(
        AuditEvent.Action.DONE,
        actor=actor,
        obj=entry,
        mailbox_id=entry.mailbox_id,
        message_id=entry.message_id,
        outcome="ok" if done else "reopened",
    )
    return entry


def save_signature(mailbox: Mailbox, signature: str, actor) -> Mailbox:
    mailbox.signature = (signature or "").strip()[:2000]
    mailbox.save(update_fields=["signature"])
    record(
        AuditEvent.Action.ADMIN_CHANGE, actor=actor, obj=mailbox, mailbox_id=mailbox.pk, detail={"field": "signature"}
    )
    return mailbox
