"""A patient reads messages (RULES.md §3): what opening one does, on the message page and on the
conversation's thread page alike.

Opening marks the entry seen, leaves a `message.read` audit event and sends the read receipt the
professional asked for, once, without asking the patient (return 4).
"""

from audit.events import record_many
from audit.models import AuditEvent
from mailboxes import reports
from mailboxes.models import Entry, Folder


def open_entries(entries: list[Entry], user, ip: str | None) -> None:
    """`entries` are the patient's own (fetched through the access-checked selectors)."""
    unseen = [e.pk for e in entries if not e.seen]
    if unseen:
        Entry.objects.filter(pk__in=unseen).update(seen=True)
    # One INSERT for the thread's messages, linked into the audit chain like single events.
    record_many(
        [
            {
                "action": AuditEvent.Action.READ,
                "actor_id": user.pk,
                "object_type": "entry",
                "object_id": str(entry.pk),
                "mailbox_id": entry.mailbox_id,
                "message_id": entry.message_id,
                "ip": ip,
            }
            for entry in entries
        ]
    )
    for entry in entries:
        if entry.message.mdn_requested_to and entry.mdn_sent_at is None and entry.folder.role == Folder.Role.INBOX:
            reports.send_mdn(entry)
    # The page shows what the patient saw; their "unread" marks go with this visit.
    for entry in entries:
        entry.was_unread = not entry.seen
        entry.seen = True
