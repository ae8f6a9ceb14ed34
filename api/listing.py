"""The reading order of a box for software (`GET /api/v1/boxes/{box}/messages`, issue 10).

Ids are taken when a delivery starts, not when it commits: two deliveries to one box a few
milliseconds apart may commit in the other order, so a cursor over ids could pass an entry
that commits just after. Each entry therefore gets its place in the box's reading order
(`Entry.api_position`) when a listing first sees it committed: every entry of the box without
one gets the next numbers (`Mailbox.api_position_next`, only growing), in id order, under a
lock on the box's row. An entry committed later gets a later number, after any cursor given
before it was visible. The pattern of IMAP's UIDs (clients/imap/uids.py), per box.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Max

from mailboxes.models import Entry, Mailbox

# The box's entries without a place, numbered from %s in id order, in one statement. On
# PostgreSQL an entry another transaction is updating at that moment (a flag, a move, its IMAP
# UID) is left for the next listing rather than waited for (SKIP LOCKED): its place is then
# later, and never a deadlock between the two updates. (SQLite has one writer at a time.)
NUMBER = """
UPDATE {entry} SET api_position = %s + ranked.n - 1
FROM (
    SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n
    FROM (SELECT id FROM {entry} WHERE mailbox_id = %s AND api_position IS NULL ORDER BY id {lock}) AS todo
) AS ranked
WHERE {entry}.id = ranked.id
"""


def number_new_entries(box_id: int) -> None:
    """Give every committed entry of the box without a place the next places, in id order. A
    listing that finds none (a poll with nothing new: most of them) takes no lock."""
    if not Entry.objects.filter(mailbox_id=box_id, api_position__isnull=True).exists():
        return
    postgres = connection.vendor == "postgresql"
    sql = NUMBER.format(entry=Entry._meta.db_table, lock="FOR UPDATE SKIP LOCKED" if postgres else "")
    with transaction.atomic():
        # FOR NO KEY UPDATE: as a delivery's quota UPDATE takes it, and not waiting for a transaction
        # that only inserts an entry of the box (its foreign key holds a KEY SHARE lock).
        boxes = Mailbox.objects.select_for_update(no_key=True).filter(pk=box_id)
        boxes = boxes.values_list("api_position_next", flat=True)
        first = next(iter(boxes), None)
        if first is None:
            return
        with connection.cursor() as cursor:
            cursor.execute(sql, [first, box_id])
            given = max(cursor.rowcount, 0)
        if given:
            Mailbox.objects.filter(pk=box_id).update(api_position_next=first + given)


def position_after(box_id: int, kind: str, value: int) -> int:
    """The place a listing's cursor stands at: "p", a place; "e", a cursor given before the
    reading order existed (an entry id), which stands after the entries of ids up to it (the
    first numbering placed them in id order)."""
    if kind == "p":
        return value
    before = Entry.objects.filter(mailbox_id=box_id, id__lte=value).aggregate(last=Max("api_position"))["last"]
    return before or 0
