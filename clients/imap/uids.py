"""IMAP UIDs (RFC 3501 §2.3.1.1) over the store's entries.

Each folder counts its UIDs (`Folder.imap_uid_next`, only ever growing) and each entry holds its
UID in its current folder (`Entry.imap_uid`). Writers of entries (the delivery path, the webmail)
know nothing of IMAP: a new entry has no UID, and a database trigger (mailboxes migration 0004)
empties the UID of an entry whose folder changes. An IMAP session gives the missing UIDs of a
folder when it looks at it (SELECT, STATUS, NOOP, IDLE wake-up), in arrival order, under a lock
on the folder row, so UIDs are strictly ascending in a folder and never given twice. The
folder's UIDVALIDITY is its primary key, which the database never reuses.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Case, IntegerField, Value, When

from mailboxes.models import Entry, Folder

BATCH = 500


def assign_uids(folder_id: int, first: list[int] = ()) -> tuple[int, dict[int, int]]:
    """Give a UID to every entry of the folder that has none; entries of `first` (ids) get theirs
    first, in that order (a MOVE's COPYUID follows the source order). Returns the folder's
    UIDNEXT and {entry id: UID} of the UIDs given now."""
    with transaction.atomic():
        uid_next = Folder.objects.select_for_update().filter(pk=folder_id).values_list("imap_uid_next", flat=True)
        uid_next = next(iter(uid_next), None)
        if uid_next is None:
            return 0, {}
        pending = list(
            Entry.objects.filter(folder_id=folder_id, imap_uid__isnull=True)
            .order_by("received_at", "id")
            .values_list("id", flat=True)
        )
        if not pending:
            return uid_next, {}
        wanted = [pk for pk in first if pk in set(pending)]
        chosen = set(wanted)
        ordered = wanted + [pk for pk in pending if pk not in chosen]
        given = {pk: uid_next + index for index, pk in enumerate(ordered)}
        for start in range(0, len(ordered), BATCH):
            chunk = ordered[start : start + BATCH]
            # The folder condition skips an entry moved away meanwhile (its number is simply unused).
            Entry.objects.filter(pk__in=chunk, folder_id=folder_id, imap_uid__isnull=True).update(
                imap_uid=Case(*[When(pk=pk, then=Value(given[pk])) for pk in chunk], output_field=IntegerField())
            )
        uid_next += len(ordered)
        Folder.objects.filter(pk=folder_id).update(imap_uid_next=uid_next)
    return uid_next, given
