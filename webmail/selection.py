"""Acting on several messages at once (issue 16 item 16): archive, move, trash, restore, delete for
good, mark read or unread, claim — on a selection of one box's list.

All or nothing: the selection is fetched through `mailboxes.access` (one message that is not
the person's, or not in this box, makes the whole request a 404), then one transaction applies
the action to every message or, on the first refusal, to none. Every change leaves one audit
event per message, with ids only (RULES.md §5).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.models import AuditEvent
from mailboxes.access import entries_for_user
from mailboxes.models import Entry, Folder, Mailbox
from webmail import organise, sharing

MAX_SELECTION = 500
ACTIONS = ("archive", "move", "trash", "restore", "delete", "read", "unread", "claim")
NEEDS_CONFIRMATION = ("trash", "delete")


def selected_entries(user, mailbox: Mailbox, ids: list[str]) -> list[Entry]:
    """The entries of `mailbox` named by `ids`, each reached through `mailboxes.access`: one id
    that is malformed, unknown, not this person's or not in this box is a 404 for the whole
    selection, so nothing is half-applied and nothing tells "not yours" from "does not exist"."""
    try:
        wanted = {int(value) for value in ids}
    except (TypeError, ValueError):
        raise Http404("Message introuvable") from None
    if not wanted:
        raise ValidationError(_("Sélectionnez au moins un message."))
    if len(wanted) > MAX_SELECTION:
        raise ValidationError(_("Sélectionnez au plus %(n)d messages à la fois.") % {"n": MAX_SELECTION})
    entries = list(
        entries_for_user(user)
        .filter(pk__in=wanted, mailbox=mailbox)
        .select_related("message", "mailbox", "folder")
        .order_by("-received_at", "-id")
    )
    if len(entries) != len(wanted):
        raise Http404("Message introuvable")
    return entries


@transaction.atomic
def apply(action: str, entries: list[Entry], actor, *, folder: Folder | None = None) -> str:
    """Apply `action` to every entry, or (ValidationError, rolled back) to none. Returns what
    the person is told."""
    if action not in ACTIONS:
        raise ValidationError(_("Action inconnue."))
    mailbox = entries[0].mailbox
    count = len(entries)
    if action in ("archive", "trash", "move"):
        if action == "move" and folder is None:
            raise ValidationError(_("Choisissez le dossier où déplacer les messages."))
        role = {"archive": Folder.Role.ARCHIVE, "trash": Folder.Role.TRASH}.get(action)
        target = folder if action == "move" else mailbox.folder(role)
        if target.role == Folder.Role.DRAFTS:
            raise ValidationError(_("Un message reçu ou envoyé ne se range pas dans les brouillons."))
        organise.move_entries(entries, target, actor)
        if action == "trash":
            return ngettext(
                "%(n)d message placé dans la corbeille.", "%(n)d messages placés dans la corbeille.", count
            ) % {"n": count}
        return ngettext("%(n)d message déplacé dans « %(f)s ».", "%(n)d messages déplacés dans « %(f)s ».", count) % {
            "n": count,
            "f": target.name,
        }
    if action == "restore":
        _require_trash(entries)
        for entry in entries:
            organise.restore_entry(entry, actor)
        return ngettext("%(n)d message restauré.", "%(n)d messages restaurés.", count) % {"n": count}
    if action == "delete":
        _require_trash(entries)
        organise.delete_entries(entries, actor=actor)
        return ngettext("%(n)d message supprimé définitivement.", "%(n)d messages supprimés définitivement.", count) % {
            "n": count
        }
    if action in ("read", "unread"):
        mark_seen(entries, actor, seen=action == "read")
        if action == "read":
            return ngettext("%(n)d message marqué comme lu.", "%(n)d messages marqués comme lus.", count) % {"n": count}
        return ngettext("%(n)d message marqué comme non lu.", "%(n)d messages marqués comme non lus.", count) % {
            "n": count
        }
    # claim
    for entry in entries:
        sharing.assign_entry(entry, actor, actor)
    return ngettext("Vous prenez %(n)d message en charge.", "Vous prenez %(n)d messages en charge.", count) % {
        "n": count
    }


def _require_trash(entries: list[Entry]) -> None:
    if any(entry.folder.role != Folder.Role.TRASH for entry in entries):
        raise ValidationError(_("Seuls les messages de la corbeille se restaurent ou se suppriment définitivement."))


def mark_seen(entries: list[Entry], actor, *, seen: bool) -> None:
    """Read or unread, with one audit event per message whose state changes."""
    changed = [entry for entry in entries if entry.seen != seen]
    if not changed:
        return
    Entry.objects.filter(pk__in=[entry.pk for entry in changed]).update(seen=seen)
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                action="message.marked_read" if seen else "message.marked_unread",
                actor=actor,
                object_type="entry",
                object_id=str(entry.pk),
                mailbox_id=entry.mailbox_id,
                message_id=entry.message_id,
                detail={"selection": len(entries)},
            )
            for entry in changed
        ]
    )
