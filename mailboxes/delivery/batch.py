"""Many deliveries from one box inside ONE transaction of the caller (a campaign's chunk of
lines, issue 9): `send_message` stays the one path, message by message; inside
`many_in_one_transaction(sender)` it leaves two of its end-of-delivery steps to the end of the
block, which runs before the caller's COMMIT:

- **durability**: each message's files are written and their fsync started at once, as always,
  but the wait for them happens once for the whole block instead of once per message (every
  file of every message is on stable storage before the COMMIT that makes the messages
  visible: the guarantee of issue 17 is the same, paid once per transaction);
- **the sending box's quota and last use**: its SENT copies are counted in one UPDATE at the end
  (the sum of the sizes of the block's messages still there, so a message whose savepoint rolled
  back is not counted), instead of an UPDATE per message that locks the sending box's row from
  the first message to the COMMIT and so serialises two chunks of one campaign.

And after the COMMIT, the receivers of `audit.chain.events_committed` (the API's hooks, the
metrics) get the block's audit rows in one signal instead of one per message
(`audit.chain.one_signal_per_block`).

The recipients' quota is counted per message as outside a block (their room is checked there).

With `savepoint_per_message=False` a message's rows are written without a savepoint of their
own: any failure of a delivery's write, a recipient box that filled up since the plan included,
is then not retried message by message but raised, and it rolls the caller's whole transaction
back (the campaign then sends that chunk again with savepoints). A savepoint a message was two
statements and a PostgreSQL subtransaction per message (bench/RESULTS.md issue 9).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import F, Sum
from django.utils import timezone

from audit.chain import one_signal_per_block
from mailboxes.models import Mailbox, Message

if TYPE_CHECKING:
    from mailboxes.delivery.writing import StoredFiles


@dataclass
class Batch:
    sender_box_id: int
    savepoint_per_message: bool = True
    files: list[StoredFiles] = field(default_factory=list)
    sent_copies: list[int] = field(default_factory=list)  # messages whose SENT copy is counted at the end


_current: ContextVar[Batch | None] = ContextVar("mailboxes_delivery_batch", default=None)


def current() -> Batch | None:
    return _current.get()


def savepoint_per_message() -> bool:
    """Whether a message's write gets a savepoint of its own (always, outside a block)."""
    batch = _current.get()
    return batch is None or batch.savepoint_per_message


@contextlib.contextmanager
def many_in_one_transaction(sender: Mailbox, *, savepoint_per_message: bool = True) -> Iterator[None]:
    """Deliveries from `sender` inside the caller's transaction (required: the block's end must
    come before its COMMIT). On an exception nothing is finished: the caller's transaction rolls
    back, with every row of the block."""
    if not connection.in_atomic_block:
        raise RuntimeError("many_in_one_transaction needs the caller's transaction")
    batch = Batch(sender_box_id=sender.pk, savepoint_per_message=savepoint_per_message)
    token = _current.set(batch)
    with one_signal_per_block():
        try:
            yield
        finally:
            _current.reset(token)
        finish(batch)


def finish(batch: Batch) -> None:
    """Every file of the block on stable storage (raises what an fsync raised), then the
    sending box's SENT copies counted in one UPDATE."""
    for files in batch.files:
        files.wait_durable()
    if batch.sent_copies:
        size = Message.objects.filter(pk__in=batch.sent_copies).aggregate(total=Sum("size"))["total"] or 0
        Mailbox.objects.filter(pk=batch.sender_box_id).update(
            used_bytes=F("used_bytes") + size, last_used_at=timezone.now()
        )
