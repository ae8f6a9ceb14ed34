"""A patient reads messages (RULES.md §3): what opening one does, on the message page and on the
conversation's thread page alike.

Opening marks the entry seen, leaves a `message.read` audit event and sends the read receipt the
professional asked for, once, without asking the patient (return 4).
"""

from mailboxes import reports
from mailboxes.models import Entry, Folder
from mailboxes.reading import Opened, record_opening


def open_entries(entries: list[Entry], user, ip: str | None) -> None:
    """`entries` are the patient's own (fetched through the access-checked selectors). The act
    of opening is the one every side shares (`mailboxes.reading`); the receipt is the patient's."""
    # A patient's own box is never shared: nobody else's opening to remember.
    record_opening(user, [Opened.of(entry, shared=False) for entry in entries], ip=ip, via="patient")
    for entry in entries:
        if entry.message.mdn_requested_to and entry.mdn_sent_at is None and entry.folder.role == Folder.Role.INBOX:
            reports.send_mdn(entry)
    # The page shows what the patient saw; their "unread" marks go with this visit.
    for entry in entries:
        entry.was_unread = not entry.seen
        entry.seen = True
