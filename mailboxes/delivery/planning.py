"""Planning the recipients of one message (RULES.md §1–3): who gets it here, which other
operators' domains it goes to, who is refused and why.

Each recipient is one of: a hosted box (exists, active, under its size limit and quota); the
patient domain (its policy decides, limits included, then an active patient box must exist); a
trusted external domain (only for local senders: mail that came in over SMTP is never relayed
out); or a refusal with a code. A message sent by a patient box is also put to the policy for
each recipient. `check_recipient` gives the same decision one address at a time, for the SMTP
gateway's RCPT TO.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from django.db import connections, router

from mailboxes.delivery.decisions import (
    DeliveryRefused,
    refuse_invalid,
    refuse_not_hosted,
    refuse_over_quota,
    refuse_too_large,
    refuse_unknown,
    refuse_untrusted,
)
from mailboxes.delivery.senders import normalised_sender
from mailboxes.models import AbsenceMessage, BoxRule, Entry, Folder, Forwarding, Mailbox, Message
from mailboxes.patient_domain import Decision, Envelope, PatientDomainPolicy, get_policy
from mailboxes.trust import InvalidAddress, classify_domains, domain_of, normalise_address


@dataclass
class Plan:
    local: dict[str, Mailbox] = field(default_factory=dict)  # address → box
    external: dict[str, list[str]] = field(default_factory=dict)  # domain → addresses
    refused: dict[str, Decision] = field(default_factory=dict)
    # address → box that already holds a message with this Message-ID (a peer's retry)
    duplicates: dict[str, Mailbox] = field(default_factory=dict)
    # The message those boxes already hold, when no other recipient accepts this one.
    existing: Message | None = None

    @property
    def accepts_any(self) -> bool:
        return bool(self.local or self.external)

    @property
    def delivered(self) -> list[Mailbox]:
        return list(dict.fromkeys(self.local.values()))

    @property
    def queued(self) -> list[str]:
        return [address for addresses in self.external.values() for address in addresses]


def normalise_recipients(envelope_to: list[str]) -> tuple[list[str], dict[str, Decision]]:
    """The recipients normalised and de-duplicated, in order; the invalid ones refused."""
    recipients: list[str] = []
    refused: dict[str, Decision] = {}
    for value in envelope_to:
        try:
            address = normalise_address(value)
        except InvalidAddress:
            refused[str(value)] = refuse_invalid(str(value))
            continue
        if address not in recipients:
            recipients.append(address)
    return recipients, refused


def plan_recipients(
    recipients: list[str],
    envelope: Envelope,
    *,
    local_sender: bool,
    size: int,
    classes: dict | None = None,
    dedupe_message_id: str = "",
) -> Plan:
    """Decide every (normalised, de-duplicated) recipient, in a few queries. With
    `dedupe_message_id`, a box that already holds a message of that Message-ID is set apart."""
    plan = Plan()
    if not recipients:
        return plan
    if classes is None:
        classes = classify_domains({domain_of(r) for r in recipients})
    local_addresses = [r for r in recipients if classes[domain_of(r)] in ("hosted", "patient")]
    boxes = {box.address: box for box in local_boxes(local_addresses, dedupe_message_id)} if local_addresses else {}
    policy = get_policy()
    for address in recipients:
        box = boxes.get(address)
        if box is not None and box.already_delivered:
            plan.duplicates[address] = box
            continue
        decision = decide(address, classes[domain_of(address)], box, envelope, policy, local_sender, size)
        if not decision.deliver:
            plan.refused[address] = decision
        elif box is not None:  # a hosted or patient box (decide refuses those without one)
            plan.local[address] = box
        else:
            plan.external.setdefault(domain_of(address), []).append(address)
    return plan


def decide(
    address: str,
    kind: str,
    box: Mailbox | None,
    envelope: Envelope,
    policy: PatientDomainPolicy,
    local_sender: bool,
    size: int,
) -> Decision:
    """One recipient: its domain's rule, then its box's room, then (for a patient's message)
    the policy's say on the sender."""
    if kind == "untrusted":
        return refuse_untrusted(domain_of(address))
    if kind == "trusted" and not local_sender:
        return refuse_not_hosted(domain_of(address))
    if kind == "hosted" and (box is None or box.is_patient):
        return refuse_unknown()
    if kind == "patient":  # the patient domain: its policy decides (limits included), delivery obeys
        decision = policy.decide_recipient(envelope, address)
        if not decision.deliver:
            return decision
        if box is None or not box.is_patient:
            return refuse_unknown()
    if box is not None:
        decision = room_in(box, size)
        if not decision.deliver:
            return decision
    sender_box = envelope.sender_mailbox
    if sender_box is not None and sender_box.is_patient:
        return policy.decide_patient_sender(envelope, address)
    return Decision.ok()


def room_in(box: Mailbox, size: int) -> Decision:
    """A hosted box's own size limit (a patient box's is its policy's), and its quota."""
    if not box.is_patient and box.max_message_bytes and size > box.max_message_bytes:
        return refuse_too_large(size, box.max_message_bytes)
    if size and box.used_bytes + size > box.quota_bytes:
        return refuse_over_quota()
    return Decision.ok()


def check_recipient(envelope_from: str, address: str, *, sender_mailbox: Mailbox | None = None) -> Decision:
    """RCPT TO for a message coming from outside (the SMTP gateway): a hosted active box, a
    patient of the patient domain accepted by the policy, or, only for a local sender
    (`sender_mailbox` given), a trusted external domain."""
    try:
        recipient = normalise_address(address)
    except InvalidAddress:
        return refuse_invalid(address)
    try:
        sender = normalised_sender(envelope_from)
    except DeliveryRefused:
        return refuse_invalid(envelope_from)
    envelope = Envelope(sender_address=sender, sender_mailbox=sender_mailbox, subject="", size=0, message_id="")
    plan = plan_recipients([recipient], envelope, local_sender=sender_mailbox is not None, size=0)
    decision = plan.refused.get(recipient)
    if decision is not None and decision.automatic_return and sender:
        # One behaviour for one rule (RULES.md §3): the patient-domain policy answers this
        # refusal with its automatic return message, to an outside sender as to a hosted one.
        # RCPT accepts; after DATA, `send_message` refuses and the policy sends the return.
        return Decision.ok()
    return decision or Decision.ok()


# The recipients' query runs for every message: written once here as SQL (the ORM's compile of
# its two sub-queries cost more than running them). Table names come from the models; every
# value is a bound parameter; the IN list has one placeholder per address.
LOCAL_BOXES_SQL = (
    "SELECT b.id, b.kind, b.address, b.quota_bytes, b.used_bytes, b.max_message_bytes, b.display_name, "  # noqa: S608
    f'(SELECT f.id FROM "{Folder._meta.db_table}" f WHERE f.mailbox_id = b.id AND f.role = %s '
    "ORDER BY f.id LIMIT 1) AS inbox_folder_id, "
    # Whether the box already holds that Message-ID: the messages of that Message-ID (an index
    # lookup, usually none or one), each probed in the box by `entry_unique`. The scalar
    # sub-query keeps that shape whatever the statistics: written as a join, the prepared
    # statement's generic plan read every entry of the box for every message (issue 17).
    f'EXISTS (SELECT 1 FROM "{Message._meta.db_table}" m WHERE m.message_id = %s AND '
    f'(SELECT e.id FROM "{Entry._meta.db_table}" e WHERE e.mailbox_id = b.id AND e.message_id = m.id) '
    "IS NOT NULL) AS already_delivered, "
    # Whether the box has any sorting rule, absence message or forwarding switched on: when none
    # of the recipient boxes has, the delivery transaction skips its query of them (issue 17:
    # one round trip fewer per message); when one has, `box_actions` reads them exactly there.
    f'(EXISTS (SELECT 1 FROM "{BoxRule._meta.db_table}" r WHERE r.mailbox_id = b.id AND r.enabled) '
    f'OR EXISTS (SELECT 1 FROM "{AbsenceMessage._meta.db_table}" a WHERE a.mailbox_id = b.id AND a.enabled) '
    f'OR EXISTS (SELECT 1 FROM "{Forwarding._meta.db_table}" w WHERE w.mailbox_id = b.id AND w.enabled)) '
    "AS may_have_settings "
    f'FROM "{Mailbox._meta.db_table}" b WHERE b.is_active AND b.address IN ({{addresses}})'
)


def local_boxes(addresses: list[str], dedupe_message_id: str = ""):
    """The active boxes of `addresses`, each with the id of its INBOX (`inbox_folder_id`) and,
    with `dedupe_message_id`, whether it already holds a message of that Message-ID
    (`already_delivered`), and whether it may have settings (`may_have_settings`): one query.

    Read through a plain cursor and built with `Model.from_db`, the documented constructor for
    rows loaded from the database, the other columns set as attributes, as `Mailbox.objects.raw`
    does (issue 17: raw()'s per-call machinery, resolving its columns to fields, cost more than
    building the one or few boxes)."""
    sql = LOCAL_BOXES_SQL.format(addresses=", ".join(["%s"] * len(addresses)))
    db = router.db_for_read(Mailbox)
    with connections[db].cursor() as cursor:
        # An empty Message-ID matches no message: a NULL compares to nothing.
        cursor.execute(sql, [Folder.Role.INBOX.value, dedupe_message_id or None, *addresses])
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    field_names, positions, extras = box_columns(tuple(columns))
    boxes = []
    for row in rows:
        box = Mailbox.from_db(db, field_names, [row[position] for position in positions])
        for name, position in extras:
            setattr(box, name, row[position])
        boxes.append(box)
    return boxes


@functools.cache
def box_columns(columns: tuple[str, ...]) -> tuple[list[str], list[int], list[tuple[str, int]]]:
    """For the columns of a row: the Mailbox fields among them in the model's order (as
    `from_db` takes them), their positions in the row, and the other columns with theirs."""
    fields = [f for f in Mailbox._meta.concrete_fields if f.column in columns]
    field_columns = {f.column for f in fields}
    extras = [(name, position) for position, name in enumerate(columns) if name not in field_columns]
    return [f.attname for f in fields], [columns.index(f.column) for f in fields], extras
