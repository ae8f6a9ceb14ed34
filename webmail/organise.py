"""Organising a mailbox (issue 6 §4): move, archive, trash and restore, flags, read state,
user folders, and the retention of the trash (`settings.TRASH_RETENTION_DAYS`).

Every action takes an entry or mailbox already fetched through `mailboxes.access` and leaves an
audit event with ids only (RULES.md §5).
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import record
from audit.models import AuditEvent
from mailboxes.delivery import release_space
from mailboxes.models import Entry, Folder, Mailbox, Message

logger = logging.getLogger(__name__)


def _folder(mailbox: Mailbox, role: str) -> Folder:
    folder = mailbox.folders.filter(role=role).first()
    if folder is None:
        mailbox.ensure_system_folders()
        folder = mailbox.folders.get(role=role)
    return folder


@transaction.atomic
def move_entry(entry: Entry, folder: Folder, actor) -> Entry:
    """Move a message to another folder of the same box (trash included)."""
    if folder.mailbox_id != entry.mailbox_id:
        raise ValidationError(_("Ce dossier n'appartient pas à cette boîte aux lettres."))
    if folder.pk == entry.folder_id:
        return entry
    previous = entry.folder_id
    entry.folder = folder
    entry.trashed_at = timezone.now() if folder.role == Folder.Role.TRASH else None
    # A queryset update, as every move: it also forgets the entry's IMAP UID in its old folder
    # (EntryQuerySet.update), which the instance then reads back.
    Entry.objects.filter(pk=entry.pk).update(folder=folder, trashed_at=entry.trashed_at)
    entry.refresh_from_db(fields=["imap_uid", "imap_deleted"])
    record(
        AuditEvent.Action.DELETED if folder.role == Folder.Role.TRASH else AuditEvent.Action.MOVED,
        actor=actor,
        obj=entry,
        mailbox_id=entry.mailbox_id,
        message_id=entry.message_id,
        detail={"from_folder": previous, "to_folder": folder.pk, "to_role": folder.role},
    )
    return entry


@transaction.atomic
def move_entries(entries, folder: Folder, actor, actor_label: str = "") -> list[int]:
    """`move_entry` for many entries of one box at once (IMAP MOVE): one UPDATE, one audit event
    per entry. Returns the ids of the entries moved (those not already in `folder`)."""
    entries = [e for e in entries if e.folder_id != folder.pk]
    if any(e.mailbox_id != folder.mailbox_id for e in entries):
        raise ValidationError(_("Ce dossier n'appartient pas à cette boîte aux lettres."))
    if not entries:
        return []
    ids = [e.pk for e in entries]
    trashed_at = timezone.now() if folder.role == Folder.Role.TRASH else None
    Entry.objects.filter(pk__in=ids).update(folder=folder, trashed_at=trashed_at)
    action = AuditEvent.Action.DELETED if folder.role == Folder.Role.TRASH else AuditEvent.Action.MOVED
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                action=action,
                actor=actor if getattr(actor, "is_authenticated", False) else None,
                actor_label=actor_label,
                object_type="entry",
                object_id=str(e.pk),
                mailbox_id=e.mailbox_id,
                message_id=e.message_id,
                detail={"from_folder": e.folder_id, "to_folder": folder.pk, "to_role": folder.role},
            )
            for e in entries
        ]
    )
    return ids


def archive_entry(entry: Entry, actor) -> Entry:
    return move_entry(entry, _folder(entry.mailbox, Folder.Role.ARCHIVE), actor)


def trash_entry(entry: Entry, actor) -> Entry:
    return move_entry(entry, _folder(entry.mailbox, Folder.Role.TRASH), actor)


def restore_entry(entry: Entry, actor) -> Entry:
    """Out of the trash, back to the inbox (or Sent for what the box sent)."""
    role = Folder.Role.SENT if entry.message.sender_mailbox_id == entry.mailbox_id else Folder.Role.INBOX
    return move_entry(entry, _folder(entry.mailbox, role), actor)


def set_flag(entry: Entry, *, flagged: bool) -> Entry:
    if entry.flagged != flagged:
        entry.flagged = flagged
        entry.save(update_fields=["flagged"])
    return entry


def set_seen(entry: Entry, *, seen: bool) -> Entry:
    if entry.seen != seen:
        entry.seen = seen
        entry.save(update_fields=["seen"])
    return entry


@transaction.atomic
def delete_entries(entries, actor=None, actor_label: str = "") -> int:
    """Delete entries for good, handing their space back to their boxes (`release_space`); a
    message no box holds any more goes with them."""
    entries = list(entries)
    if not entries:
        return 0
    message_ids = {e.message_id for e in entries}
    events = [
        {
            "action": AuditEvent.Action.DELETED,
            "actor": actor if getattr(actor, "is_authenticated", False) else None,
            "actor_label": actor_label,
            "object_type": "entry",
            "object_id": str(e.pk),
            "mailbox_id": e.mailbox_id,
            "message_id": e.message_id,
            "detail": {"final": True},
        }
        for e in entries
    ]
    # Each box gets the space of its deleted messages back (drafts count too: webmail.drafts).
    release_space(entries)
    Entry.objects.filter(pk__in=[e.pk for e in entries]).delete()
    # A message still waiting for the relay or held elsewhere stays.
    orphans = Message.objects.filter(pk__in=message_ids, entries__isnull=True, outbox__isnull=True)
    orphans.delete()
    AuditEvent.objects.bulk_create([AuditEvent(**e) for e in events])
    return len(entries)


def delete_entry(entry: Entry, actor) -> None:
    if entry.folder.role != Folder.Role.TRASH:
        raise ValidationError(_("Seul un message de la corbeille peut être supprimé définitivement."))
    delete_entries([entry], actor=actor)


def empty_trash(mailbox: Mailbox, actor) -> int:
    trash = _folder(mailbox, Folder.Role.TRASH)
    return delete_entries(Entry.objects.filter(folder=trash), actor=actor)


def purge_expired_trash(now=None, batch: int = 1000) -> int:
    """Delete what sits in a trash for longer than TRASH_RETENTION_DAYS (Celery beat)."""
    now = now or timezone.now()
    limit = now - datetime.timedelta(days=settings.TRASH_RETENTION_DAYS)
    total = 0
    while True:
        chunk = list(
            Entry.objects.filter(folder__role=Folder.Role.TRASH, trashed_at__lt=limit).only(
                "id", "mailbox_id", "message_id"
            )[:batch]
        )
        if not chunk:
            break
        total += delete_entries(chunk, actor_label="system")
    if total:
        logger.info("trash purge: %d entries deleted", total)
    return total


def _name_taken(mailbox: Mailbox, name: str, exclude=None) -> bool:
    # Compared in Python: SQLite folds the case of ASCII letters only ("É" vs "é").
    wanted = name.casefold()
    return any(
        other.casefold() == wanted for other in mailbox.folders.exclude(pk=exclude).values_list("name", flat=True)
    )


def _folder_name(mailbox: Mailbox, name: str, exclude=None) -> str:
    """The name a folder is created or renamed to, stripped, or a ValidationError saying why
    not (code `taken` when another folder of the box has it). Both ways in (the webmail's forms
    and IMAP CREATE/RENAME) come here: a rename to 2000 characters or a name with a NUL was a
    database error (a 500, an IMAP "erreur temporaire")."""
    name = (name or "").strip()
    if not name:
        raise ValidationError(_("Donnez un nom au dossier."), code="empty")
    if len(name) > Folder._meta.get_field("name").max_length:
        raise ValidationError(_("Un nom de dossier compte au plus 100 caractères."), code="too_long")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise ValidationError(_("Un nom de dossier ne contient pas de caractère de contrôle."), code="control")
    if name.casefold() == "inbox":  # the inbox's name over IMAP: such a folder was hidden there
        raise ValidationError(_("« %(n)s » est le nom de la boîte de réception.") % {"n": name}, code="taken")
    if _name_taken(mailbox, name, exclude=exclude):
        raise ValidationError(_("Un dossier « %(n)s » existe déjà dans cette boîte.") % {"n": name}, code="taken")
    return name


def create_folder(mailbox: Mailbox, name: str) -> Folder:
    name = _folder_name(mailbox, name)
    return Folder.objects.create(mailbox=mailbox, role=Folder.Role.USER, name=name, position=100)


def rename_folder(folder: Folder, name: str) -> Folder:
    if folder.role != Folder.Role.USER:
        raise ValidationError(_("Les dossiers du système ne se renomment pas."))
    name = _folder_name(folder.mailbox, name, exclude=folder.pk)
    folder.name = name
    folder.save(update_fields=["name"])
    return folder


@transaction.atomic
def delete_folder(folder: Folder, actor) -> int:
    """A user folder goes; its messages go to the trash (nothing is lost silently)."""
    if folder.role != Folder.Role.USER:
        raise ValidationError(_("Les dossiers du système ne se suppriment pas."))
    trash = _folder(folder.mailbox, Folder.Role.TRASH)
    moved = Entry.objects.filter(folder=folder).update(folder=trash, trashed_at=timezone.now())
    record(
        AuditEvent.Action.MOVED,
        actor=actor,
        obj=folder,
        mailbox_id=folder.mailbox_id,
        detail={"folder_deleted": folder.pk, "entries": moved},
    )
    folder.delete()
    return moved
