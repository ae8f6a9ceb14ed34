"""Opening a message: what every way of seeing one does (issue 13 item 5, issue 15 item 21).

The webmail's reading pane, body, headers and print views and the quote of a reply, the IMAP
FETCH of a message's text, and the patient's message and thread pages all call
`record_opening`: the entries are marked seen (unless an IMAP client peeked), who opened a
shared box's message is remembered, and each entry leaves one `message.read` audit event (one
INSERT for all of them). What only one side adds stays there: the read receipt a patient's
opening sends by itself is the patient policy's rule (`patients/reading.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from audit.events import record_many
from audit.models import AuditEvent
from mailboxes.models import Entry, EntryView, Mailbox

SHARED_KINDS = (Mailbox.Kind.ORGANISATIONAL, Mailbox.Kind.APPLICATIVE)


@dataclass(frozen=True)
class Opened:
    entry_id: int
    mailbox_id: int
    message_id: int
    # What the caller already knows, to spare a statement: the entry was read before (no UPDATE
    # for it), its box is or is not shared (None: ask the database).
    seen: bool = False
    shared: bool | None = None

    @classmethod
    def of(cls, entry: Entry, *, shared: bool | None = None) -> Opened:
        return cls(entry.pk, entry.mailbox_id, entry.message_id, seen=entry.seen, shared=shared)


def record_opening(user, opened: list[Opened], *, ip: str | None, via: str, mark_seen: bool = True) -> None:
    """`opened` were fetched through the access-checked selectors of the caller."""
    if not opened:
        return
    unseen = [o.entry_id for o in opened if not o.seen]
    unknown = {o.mailbox_id for o in opened if o.shared is None}
    with transaction.atomic():
        if mark_seen and unseen:
            Entry.objects.filter(pk__in=unseen, seen=False).update(seen=True)
        shared = {o.mailbox_id for o in opened if o.shared}
        if unknown:
            shared |= set(Mailbox.objects.filter(pk__in=unknown, kind__in=SHARED_KINDS).values_list("pk", flat=True))
        views = [EntryView(entry_id=o.entry_id, user=user) for o in opened if o.mailbox_id in shared]
        if views:
            EntryView.objects.bulk_create(views, ignore_conflicts=True)
        record_many(
            [
                {
                    "action": AuditEvent.Action.READ,
                    "actor_id": user.pk,
                    "object_type": "entry",
                    "object_id": str(o.entry_id),
                    "mailbox_id": o.mailbox_id,
                    "message_id": o.message_id,
                    "detail": {"via": via},
                    "ip": ip,
                }
                for o in opened
            ]
        )
