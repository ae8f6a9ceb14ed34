"""Writing one accepted message (DESIGN.md "One message store"): its bytes once, then its rows.

The raw bytes and each attachment are written to Django storage first, named by content hash
(`mailboxes.store`), so no row ever points at a missing file; their fsync (file and directory,
local folder backend) runs in the background while the rows are written. Then, in one
transaction: the Message, its Attachments, one Entry per box (the recipients' INBOX, the
sender's SENT), one Delivery per recipient, one Outbox row per other operator's domain, the
audit events, what the patient-domain policy does inside the transaction; then the wait for
the files' fsync, and last the quota of every box that gets a copy (`quota.count_space`, which
also catches a box that filled up since the plan), just before COMMIT: nothing is acknowledged
that is not on stable storage, and the boxes' rows are locked only for the end of the
transaction. After commit the Outbox rows go to the relay's queue.

On PostgreSQL the rows are written in one statement (issue 17, `write_in_one_statement`): the
ids reserved, the audit chain head taken, then every INSERT, the head's move and the quota's
conditional UPDATE as one `WITH` statement after the files' fsync (mailboxes/delivery/statement.py).
Elsewhere (SQLite) the ORM's `bulk_create` writes one INSERT per table (`write_with_orm`). The
rows are built once, the same for both (`DeliveryRows`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from audit import chain
from audit.events import audit_rows, audit_rows_deferred
from audit.models import AuditEvent
from mailboxes import outbox as relay_queue
from mailboxes.box_actions import apply_box_settings
from mailboxes.delivery import batch, bounces, caller, quota, receipts, statement
from mailboxes.delivery.events import event
from mailboxes.delivery.planning import Plan
from mailboxes.mime import ParsedMessage
from mailboxes.models import Attachment, Delivery, Entry, Folder, Mailbox, Message, Outbox
from mailboxes.patient_domain import Decision, Envelope, get_policy, is_patient_address
from mailboxes.store import AllSynced, sync_in_background, write_attachment, write_raw

# A message's bodies go into the delivery statement as they are, beside the JSON of its other
# columns (statement.DeliveryStatement.insert): a 139 KB body escaped into JSON costs more.
MESSAGE_TEXTS = ("text_body", "html_body")


class QuotaRace(Exception):
    """A recipient box filled up between the plan and the transaction (rolled back, retried)."""


@dataclass
class Submission:
    """One message on its way in: what `send_message` was given and what it found out."""

    raw: bytes
    parsed: ParsedMessage
    envelope: Envelope
    sender: str  # the normalised envelope sender, "" for the null reverse-path
    recipients: list[str]
    source: str
    actor: object = None
    sender_mailbox: Mailbox | None = None
    refused: dict[str, Decision] = field(default_factory=dict)
    # The SMTP gateway's `Return-Path:` and `Received:` lines, stored in front of `raw`.
    trace: bytes = b""

    @property
    def stored_size(self) -> int:
        """The size of the stored message (trace lines included): what the quota counts."""
        return len(self.trace) + len(self.raw)

    @property
    def sender_box_id(self) -> int | None:
        return self.sender_mailbox.pk if self.sender_mailbox is not None else None


@dataclass
class StoredFiles:
    sha256: str
    raw_name: str
    attachments: list[Attachment]
    durable: AllSynced | None = None  # the files' fsync, running while the rows are written

    def wait_durable(self) -> None:
        """Every file on stable storage (raises what the fsync raised): called before COMMIT."""
        if self.durable is not None:
            self.durable.result()


def store_files(raw: bytes, parsed: ParsedMessage, prefix: bytes = b"") -> StoredFiles:
    """The raw bytes (after `prefix`, the trace lines) once and each attachment once, named by
    content hash, before any row; their fsync starts now, in the background, and
    `write_message` waits for it before its COMMIT."""
    sha256, raw_file = write_raw(raw, prefix)
    written = [raw_file]
    rows = []
    for position, part in enumerate(parsed.attachments):
        data = part.data
        digest, attachment_file = write_attachment(data)
        written.append(attachment_file)
        rows.append(
            Attachment.from_part(part, sha256=digest, file=attachment_file.name, position=position, size=len(data))
        )
        del data
    return StoredFiles(sha256=sha256, raw_name=raw_file.name, attachments=rows, durable=sync_in_background(written))


def thread_key(parsed: ParsedMessage, message_id: str) -> str:
    """The thread of the message: that of the nearest message it answers that we hold, else the
    first of its references, else its own Message-ID."""
    candidates = ([parsed.in_reply_to] if parsed.in_reply_to else []) + list(reversed(parsed.references))
    if not candidates and parsed.reported_message_id:  # a report without In-Reply-To (RFC 3464)
        candidates = [parsed.reported_message_id]
    if not candidates:
        return message_id
    found = dict(
        Message.objects.filter(message_id__in=candidates)
        .exclude(thread_key="")
        .order_by("id")
        .values_list("message_id", "thread_key")
    )
    for candidate in candidates:
        if candidate in found:
            return found[candidate]
    return parsed.references[0] if parsed.references else (parsed.in_reply_to or candidates[0])


def message_row(submission: Submission, files: StoredFiles) -> Message:
    parsed, envelope = submission.parsed, submission.envelope
    return Message(
        message_id=envelope.message_id[:998],
        in_reply_to=parsed.in_reply_to[:998],
        references=" ".join(parsed.references),
        thread_key=thread_key(parsed, envelope.message_id)[:998],
        from_address=(parsed.from_address or submission.sender)[:254],
        from_name=parsed.from_name[:300],
        reply_to=parsed.reply_to[:254],
        reply_to_name=parsed.reply_to_name[:300],
        to=parsed.to,
        cc=parsed.cc,
        envelope_from=submission.sender,
        envelope_to=submission.recipients,
        subject=parsed.subject,
        date=parsed.date,
        text_body=parsed.text_body,
        html_body=parsed.html_body,
        mdn_requested_to=parsed.mdn_requested_to[:254],
        x_mss_headers=parsed.x_mss_headers,
        auto_submitted=parsed.auto_submitted,
        is_report=parsed.is_report,
        report_type=parsed.report_type,
        has_attachments=any(not a.is_inline for a in files.attachments),
        size=submission.stored_size,
        sha256=files.sha256,
        raw=files.raw_name,
        sender_mailbox=submission.sender_mailbox,
    )


def write_message(submission: Submission, files: StoredFiles, plan: Plan, *, recheck_room: bool) -> Message | None:
    """The rows of one accepted message, in one transaction. `QuotaRace` (rolled back) when a
    recipient box filled up since the plan; with `recheck_room`, the boxes are locked and
    re-read first, and those now full are refused instead (None when no recipient is left).
    Inside a block without a savepoint per message (`batch`), the rows go straight into the
    caller's transaction, and any failure rolls that whole transaction back."""
    with transaction.atomic(savepoint=batch.savepoint_per_message()):
        if recheck_room:
            quota.refuse_boxes_now_full(plan.local, submission.refused, submission.stored_size)
            if not plan.accepts_any:
                return None
        rows = DeliveryRows.build(submission, files, plan, timezone.now())
        if statement.uses_one_statement():
            written = write_in_one_statement(submission, files, plan, rows)
        else:
            written = write_with_orm(submission, files, plan, rows)
        # A box filled since the plan rolls it all back.
        if not written:
            raise QuotaRace
        message, delivered = rows.message, plan.delivered
        tell_policy_refused(submission.envelope, message, submission.refused)
        get_policy().after_delivery(message, delivered)
        # Each recipient box's own settings: rules now, absence reply and forward after commit.
        apply_box_settings(message, delivered)
        for outbox in rows.outboxes:
            transaction.on_commit(functools.partial(relay_queue.enqueue, outbox.pk))
    caller.mark_written()  # the caller's own events went in with the rows (mailboxes/delivery/caller.py)
    return message


@dataclass
class DeliveryRows:
    """The unsaved rows of one delivery, and the boxes whose quota it counts."""

    message: Message
    attachments: list[Attachment]
    entries: list[Entry]
    deliveries: list[Delivery]
    outboxes: list[Outbox]
    counted: set[int]
    sender_in_sent: bool
    now: object

    @classmethod
    def build(cls, submission: Submission, files: StoredFiles, plan: Plan, now) -> DeliveryRows:
        delivered, sender_box_id = plan.delivered, submission.sender_box_id
        sender_in_sent = sender_box_id is not None and sender_box_id not in {box.pk for box in delivered}
        counted = {box.pk for box in delivered}
        if sender_in_sent and sender_box_id is not None:
            counted.add(sender_box_id)
        message = message_row(submission, files)
        return cls(
            message=message,
            attachments=files.attachments,
            entries=entry_rows(message, delivered, submission.sender_mailbox if sender_in_sent else None, now),
            deliveries=delivery_rows(message, plan, submission.refused),
            outboxes=[Outbox(message=message, domain=d, recipients=a) for d, a in plan.external.items()],
            counted=counted,
            sender_in_sent=sender_in_sent,
            now=now,
        )

    def children(self) -> list[Attachment | Entry | Delivery | Outbox]:
        return [*self.attachments, *self.entries, *self.deliveries, *self.outboxes]


def message_events(submission: Submission, plan: Plan, rows: DeliveryRows) -> list[dict]:
    """The delivery's audit events, those of a read receipt or a delivery report included (their
    steps update the original message's deliveries), and the caller's own events of
    `events_with_next_delivery` (mailboxes/delivery/caller.py). The rows' ids are known."""
    message, delivered = rows.message, plan.delivered
    events = delivery_events(submission, message, plan, rows.deliveries, rows.outboxes) + caller.pending()
    if receipts.is_read_receipt(submission.parsed) and delivered:
        events += receipts.record_read_receipt(submission.parsed, delivered, message)
    if bounces.is_delivery_report(submission.parsed) and delivered and submission.sender_mailbox is None:
        events += bounces.record_bounce(submission.parsed, delivered, message)
    return events


def write_with_orm(submission: Submission, files: StoredFiles, plan: Plan, rows: DeliveryRows) -> bool:
    """Any database: one `bulk_create` per table, the events, the files' fsync, the quota last
    (the boxes' rows stay locked by its UPDATE only until the COMMIT that follows). False when a
    recipient box filled up since the plan."""
    Message.objects.bulk_create([rows.message])
    for row in rows.children():
        row.message = rows.message
    Attachment.objects.bulk_create(rows.attachments)
    Entry.objects.bulk_create(rows.entries)
    Delivery.objects.bulk_create(rows.deliveries)
    Outbox.objects.bulk_create(rows.outboxes)
    AuditEvent.objects.bulk_create(audit_rows(message_events(submission, plan, rows)))
    sender_box_id = durable_or_batched(files, rows, submission.sender_box_id)
    return quota.count_space(
        rows.counted,
        submission.stored_size,
        sender_box_id=sender_box_id,
        sender_in_sent=rows.sender_in_sent,
        now=rows.now,
    )


def write_in_one_statement(submission: Submission, files: StoredFiles, plan: Plan, rows: DeliveryRows) -> bool:
    """PostgreSQL (issue 17): the ids reserved, the audit chain head taken, then every INSERT,
    the head's move and the quota's conditional UPDATE in one statement, just after the files'
    fsync. False when a recipient box filled up since the plan."""
    day = chain.current_day()
    message_ids, delivery_ids, outbox_ids, head = statement.reserve_ids(
        Message, 1, (Delivery, len(rows.deliveries)), (Outbox, len(rows.outboxes)), also=[chain.free_head_value(day)]
    )
    rows.message.pk = message_ids[0]
    for row, pk in [*zip(rows.deliveries, delivery_ids, strict=True), *zip(rows.outboxes, outbox_ids, strict=True)]:
        row.pk = pk
    for row in rows.children():
        row.message_id = rows.message.pk
    events, moves = audit_rows_deferred(message_events(submission, plan, rows), chain.heads_taken(day, head))
    one = statement.DeliveryStatement()
    one.insert(Message, [rows.message], with_pk=True, as_text=MESSAGE_TEXTS)
    one.insert(Attachment, rows.attachments, with_pk=False)
    one.insert(Entry, rows.entries, with_pk=False)
    one.insert(Delivery, rows.deliveries, with_pk=True)
    one.insert(Outbox, rows.outboxes, with_pk=True)
    one.insert(AuditEvent, events, with_pk=False, return_ids=True)  # the rows `events_committed` sends
    for move in moves:
        one.add(*move.as_sql())
    sender_box_id = durable_or_batched(files, rows, submission.sender_box_id)
    # The boxes' rows are locked from here to the COMMIT only (in id order when there are several).
    quota.lock_in_id_order(rows.counted)
    if not rows.counted:
        one.run()
        return True
    counting = one.add(
        *quota.count_space_sql(
            rows.counted,
            submission.stored_size,
            sender_box_id=sender_box_id,
            sender_in_sent=rows.sender_in_sent,
            now=rows.now,
        )
    )
    return one.run(f"(SELECT count(*) FROM {counting})") == len(rows.counted)  # noqa: S608 - a part name


def durable_or_batched(files: StoredFiles, rows: DeliveryRows, sender_box_id: int | None) -> int | None:
    """Durable before the commit that precedes the 250 (issue 17): the files' fsync, which ran
    while the rows were built, is waited for. Inside `batch.many_in_one_transaction` the wait and
    the sending box's SENT count happen once, at the end of the block, before its COMMIT: the
    sending box then leaves `rows.counted`. Returns the sending box to count now (None: the
    block counts it)."""
    in_batch = batch.current()
    if in_batch is None:
        files.wait_durable()
        return sender_box_id
    in_batch.files.append(files)
    if rows.sender_in_sent and sender_box_id is not None and sender_box_id == in_batch.sender_box_id:
        rows.counted.discard(sender_box_id)
        in_batch.sent_copies.append(rows.message.pk)
        return None
    return sender_box_id


def entry_rows(message: Message, delivered: list[Mailbox], sender_box: Mailbox | None, received_at) -> list[Entry]:
    """The INBOX of each recipient box, the SENT of the sender's box (one entry per box). A read
    receipt (MDN) arrives read: it updates the sender's delivery tracking and is not mail to
    read (issue 16 item 13), so it never counts as unread."""
    receipt = message.is_report and message.report_type == "disposition-notification"
    rows = [
        Entry(
            mailbox_id=box.pk,
            message=message,
            folder_id=folder_id(box, Folder.Role.INBOX),
            received_at=received_at,
            seen=receipt,
        )
        for box in delivered
    ]
    if sender_box is not None:
        rows.append(
            Entry(
                mailbox_id=sender_box.pk,
                message=message,
                folder_id=folder_id(sender_box, Folder.Role.SENT),
                received_at=received_at,
                seen=True,
            )
        )
    return rows


def delivery_rows(message: Message, plan: Plan, refused: dict[str, Decision]) -> list[Delivery]:
    """One Delivery per recipient: delivered here, queued for the relay, or refused with its
    code (returned when the policy answers it with an automatic return, bounced otherwise)."""
    rows = [
        Delivery(message=message, address=address, mailbox_id=box.pk, status=Delivery.Status.DELIVERED)
        for address, box in plan.local.items()
    ]
    rows += [Delivery(message=message, address=a, status=Delivery.Status.QUEUED) for a in plan.queued]
    rows += [
        Delivery(
            message=message,
            address=address[:254],
            status=Delivery.Status.RETURNED if decision.automatic_return else Delivery.Status.BOUNCED,
            reason=decision.code[:60],
        )
        for address, decision in refused.items()
    ]
    return rows


def delivery_events(
    submission: Submission, message: Message, plan: Plan, deliveries: list[Delivery], outboxes: list[Outbox]
) -> list[dict]:
    """Submitted (with counts and the outbox ids), delivered per box, refused per recipient."""
    source, sender_box_id = submission.source, submission.sender_box_id
    delivered = plan.delivered
    detail = {
        "source": source,
        "delivered": len(delivered),
        "queued": len(plan.queued),
        "refused": len(submission.refused),
        "outbox": [o.pk for o in outboxes],
    }
    events = [
        event(
            AuditEvent.Action.SUBMITTED,
            actor=submission.actor,
            actor_label=source,
            message_id=message.pk,
            mailbox_id=sender_box_id,
            detail=detail,
        )
    ]
    events += [
        event(AuditEvent.Action.DELIVERED, actor_label=source, message_id=message.pk, mailbox_id=box.pk)
        for box in delivered
    ]
    events += [
        event(
            AuditEvent.Action.REFUSED,
            actor_label=source,
            message_id=message.pk,
            mailbox_id=sender_box_id,
            outcome=d.reason[:40],
            detail={"delivery": d.pk, "status": d.status},
        )
        for d in deliveries
        if d.status in (Delivery.Status.RETURNED, Delivery.Status.BOUNCED)
    ]
    return events


def folder_id(box: Mailbox, role: str) -> int:
    """The id of a system folder of `box` (the INBOX id comes with the recipients' query); a box
    created without its folders gets them now. The SENT folder's id is kept on the box object
    (`sent_folder_id`: a system folder is never deleted), so a box that sends many messages in
    a row (a campaign's chunk) looks it up once."""
    known = getattr(box, "inbox_folder_id" if role == Folder.Role.INBOX else "sent_folder_id", None)
    if role in (Folder.Role.INBOX, Folder.Role.SENT) and known:
        return known
    found = Folder.objects.filter(mailbox_id=box.pk, role=role).values_list("id", flat=True).first()
    if found is None:
        box.ensure_system_folders()
        found = Folder.objects.filter(mailbox_id=box.pk, role=role).values_list("id", flat=True).get()
    if role == Folder.Role.SENT:
        setattr(box, "sent_folder_id", found)  # noqa: B010 - an attribute of this object only, not a field
    return found


def tell_policy_refused(envelope: Envelope, message: Message | None, refused: dict[str, Decision]) -> None:
    """The patient-domain policy hears of every refusal it may answer (automatic returns)."""
    policy = None
    for address, decision in refused.items():
        if "@" in address and (is_patient_address(address) or decision.automatic_return):
            policy = policy or get_policy()
            policy.refused(envelope, message, address, decision)
