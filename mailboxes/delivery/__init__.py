"""The one delivery path (DESIGN.md "One message store, one delivery path"; RULES.md §1–3).

Every message goes through `send_message`, whoever sends it. The package, one module per step:

- `send`: `send_message`, the page of steps;
- `senders`: who sends and may they (trust space, sender identity, size, parsing, the hop
  limit against mail loops: `is_looping` for a stored message's fields), and
  `check_sender` for the SMTP gateway's MAIL FROM;
- `planning`: each recipient's decision (hosted box, patient domain through its policy,
  another operator's domain, refusal), and `check_recipient` for RCPT TO;
- `writing`: the bytes to storage, then every row in one transaction;
- `statement`: on PostgreSQL, those rows as one statement (ids reserved first);
- `batch`: `many_in_one_transaction`, many deliveries from one box in one transaction of the
  caller (a campaign's chunk): one wait for the files' fsync and one count of the sender's box;
- `quota`: counting a delivery without a lost update, a draft (`count_draft`), `release_space`
  when entries go;
- `receipts`: read receipts (MDN) arriving in a local box, and which audit rows report one
  (`READ_RECEIPT_EVENTS`, `is_read_receipt_event`);
- `history`: a sent message's deliveries and audit events, each tied to its recipient
  (`message_history`) and why one was refused (`refusal_reason`), for the webmail's timeline
  and the API's status;
- `decisions`: the delivery path's refusal codes and texts, the one SMTP code map,
  `DeliveryRefused` and `DeliveryResult`;
- `events`: its audit events (ids only);
- `oversize`: a message from another operator over every size limit, of which the gateway kept
  only the header block: the patient domain's automatic returns when only patients receive it
  (`oversized_refusal`, `check_declared_size` for RCPT after `SIZE=`), else the size refusal;
- `caller`: `events_with_next_delivery`, a caller's own audit events (the API's call event)
  linked and written with the next delivery's.

The patient domain's rules are not here: `planning` asks the policy of
`mailboxes.patient_domain` and obeys. Callers use the names below only.
"""

from mailboxes.delivery.batch import many_in_one_transaction
from mailboxes.delivery.caller import CallerEvents, events_with_next_delivery
from mailboxes.delivery.decisions import (
    DEFAULT_REPLY,
    REPLY_CODES,
    DeliveryRefused,
    DeliveryResult,
    refusal_text,
    refuse_invalid,
    reply_code,
)
from mailboxes.delivery.history import message_history, refusal_reason
from mailboxes.delivery.oversize import check_declared_size, largest_message, oversized_refusal
from mailboxes.delivery.planning import check_recipient
from mailboxes.delivery.quota import count_draft, release_space
from mailboxes.delivery.receipts import READ_RECEIPT_EVENTS, is_read_receipt_event
from mailboxes.delivery.send import SOURCE_LABELS, SOURCES, send_message
from mailboxes.delivery.senders import check_sender, is_looping, is_null_sender

__all__ = [
    "DEFAULT_REPLY",
    "READ_RECEIPT_EVENTS",
    "REPLY_CODES",
    "SOURCES",
    "SOURCE_LABELS",
    "CallerEvents",
    "DeliveryRefused",
    "DeliveryResult",
    "check_declared_size",
    "check_recipient",
    "check_sender",
    "is_looping",
    "is_null_sender",
    "is_read_receipt_event",
    "largest_message",
    "oversized_refusal",
    "refusal_text",
    "refuse_invalid",
    "count_draft",
    "events_with_next_delivery",
    "many_in_one_transaction",
    "message_history",
    "refusal_reason",
    "release_space",
    "reply_code",
    "send_message",
]
