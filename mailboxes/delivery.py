"""The one delivery path (DESIGN.md "One message store, one delivery path"; RULES.md §1–3).

Every message goes through `send_message`, whoever sends it: the webmail, the patient space, the
API, the SMTP gateway and the system (MDNs, DSNs, automatic returns). In order:

1. parse the raw bytes once (`mailboxes.mime`), check the per-message size on the *encoded*
   size (`len(raw)`), the sender against the trust space, each recipient address strictly;
2. decide each recipient: a hosted box (exists, active, under its size limit and quota), the
   patient domain (25 MB for the whole message, then the patient-domain policy and an existing
   active patient box), a trusted external domain (only for local senders: never a relay for
   mail that came in over SMTP), or a refusal with a code;
3. if no recipient is accepted, raise `DeliveryRefused`: nothing is stored;
4. otherwise write the raw bytes once (named by content hash) and each attachment once (by
   content hash) to Django storage, then in one transaction: the Message, its Attachments, an
   Entry in each local recipient's INBOX and in the sender's SENT, one Delivery per recipient,
   one Outbox row per external domain (relayed after commit), the audit events (ids only), the
   boxes' used space; then the patient-domain policy's `refused` and `after_delivery`.

Cost (issue 3, SMTP ingest): on PostgreSQL one message to local boxes is three round trips to the
database besides BEGIN: the recipients' query (a prepared statement that also reserves the
message's id), every row of the transaction in one batch (`_Writes`), and COMMIT.

`check_sender` and `check_recipient` give the same decisions one address at a time, for the SMTP
gateway's MAIL FROM and RCPT TO.
"""

from __future__ import annotations

import functools
import logging
import uuid
import weakref
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import audit_rows, record_many
from audit.models import AuditEvent
from mailboxes import relay
from mailboxes.identifiers import ins_error
from mailboxes.mime import MalformedMessage, ParsedMessage, first_msgid, parse_message
from mailboxes.models import Attachment, Delivery, Entry, Folder, Mailbox, Message, Outbox
from mailboxes.patient_domain import Decision, Envelope, get_policy
from mailboxes.store import store_attachment, store_raw
from mailboxes.trust import InvalidAddress, classify_domains, domain_of, normalise_address

log = logging.getLogger(__name__)

SOURCES = frozenset({"webmail", "patient", "smtp", "submission", "api", "system"})
LOCAL_KINDS = frozenset({"hosted", "patient"})

# Decision code → SMTP reply code, for refusals of a whole message.
SMTP_CODES = {
    "invalid_address": 553,
    "unknown_recipient": 550,
    "untrusted_domain": 550,
    "not_hosted": 550,
    "too_large": 552,
    "over_quota": 552,
    "malformed": 554,
    "sender_not_allowed": 550,
}


class DeliveryRefused(Exception):
    """The whole message is refused: nothing was stored."""

    def __init__(self, code: str, reason: str, smtp_code: int | None = None, refused: dict | None = None):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.smtp_code = smtp_code or SMTP_CODES.get(code, 550)
        self.refused: dict[str, Decision] = refused or {}


@dataclass
class DeliveryResult:
    message: Message
    delivered: list[Mailbox] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    refused: dict[str, Decision] = field(default_factory=dict)


# --- decisions ---------------------------------------------------------------------------------


def refuse(code: str, reason: str, automatic_return: bool = False) -> Decision:
    return Decision(deliver=False, code=code, reason=reason, automatic_return=automatic_return)


def refuse_invalid(address: str) -> Decision:
    return refuse("invalid_address", _("« %(a)s » n'est pas une adresse électronique valide.") % {"a": address[:254]})


def refuse_untrusted(domain: str) -> Decision:
    return refuse(
        "untrusted_domain",
        _("Le domaine « %(d)s » n'appartient pas à l'espace de confiance MSSanté.") % {"d": domain},
    )


def refuse_unknown() -> Decision:
    return refuse("unknown_recipient", _("Aucune boîte aux lettres active ne porte cette adresse."))


def refuse_not_hosted(domain: str) -> Decision:
    return refuse(
        "not_hosted",
        _("Le domaine « %(d)s » n'est pas hébergé ici : ce serveur ne relaie pas vers d'autres opérateurs.")
        % {"d": domain},
    )


def refuse_too_large(size: int, limit: int, automatic_return: bool = False) -> Decision:
    return refuse(
        "too_large",
        _("Le message pèse %(s)s une fois encodé : la limite est de %(m)s.")
        % {"s": filesizeformat(size), "m": filesizeformat(limit)},
        automatic_return,
    )


def refuse_over_quota() -> Decision:
    return refuse("over_quota", _("La boîte aux lettres du destinataire est pleine : le message n'a pas été remis."))


def refuse_patient_without_box(local_part: str) -> Decision:
    if ins_error(local_part):
        return refuse("wrong_ins", _("L'adresse ne correspond à aucun patient : le matricule INS est invalide."), True)
    return refuse("patient_not_found", _("Aucun espace santé actif ne correspond à ce matricule INS."), True)


def refuse_forged_local(domain: str) -> Decision:
    return refuse(
        "sender_not_allowed",
        _(
            "L'expéditeur se présente sous le domaine « %(d)s », hébergé ici : un message de ce domaine "
            "ne peut pas arriver de l'extérieur."
        )
        % {"d": domain},
    )


def check_sender(envelope_from: str) -> Decision:
    """MAIL FROM of mail from another operator: the empty reverse-path (reports) is allowed;
    otherwise the sender's domain must be in the trust space and must not be one of ours (hosted
    or patient domain): our own users send through their box, never from outside."""
    if (envelope_from or "").strip() in ("", "<>"):
        return Decision.ok()
    try:
        address = normalise_address(envelope_from)
    except InvalidAddress:
        return refuse_invalid(envelope_from)
    domain = domain_of(address)
    kind = classify_domains({domain})[domain]
    if kind == "untrusted":
        return refuse_untrusted(domain)
    if kind in LOCAL_KINDS:
        return refuse_forged_local(domain)
    return Decision.ok()


def check_recipient(envelope_from: str, address: str, *, sender_mailbox: Mailbox | None = None) -> Decision:
    """RCPT TO for a message coming from outside (the SMTP gateway): a hosted active box, a
    patient of the patient domain accepted by the policy, or, only for a local sender
    (`sender_mailbox` given), a trusted external domain."""
    try:
        recipient = normalise_address(address)
    except InvalidAddress:
        return refuse_invalid(address)
    sender = "" if (envelope_from or "").strip() in ("", "<>") else envelope_from
    try:
        sender = normalise_address(sender) if sender else ""
    except InvalidAddress:
        return refuse_invalid(envelope_from)
    envelope = Envelope(sender_address=sender, sender_mailbox=sender_mailbox, subject="", size=0, message_id="")
    plan = _plan([recipient], envelope, local_sender=sender_mailbox is not None, size=0)
    return plan.refused.get(recipient) or Decision.ok()


@dataclass
class _Plan:
    local: dict[str, Mailbox] = field(default_factory=dict)  # address → box
    external: dict[str, list[str]] = field(default_factory=dict)  # domain → addresses
    refused: dict[str, Decision] = field(default_factory=dict)
    # address → box that already holds a message with this Message-ID (a peer's retry)
    duplicates: dict[str, Mailbox] = field(default_factory=dict)
    # A Message id reserved by the same query (PostgreSQL, `reserve_message_id`), or None.
    message_pk: int | None = None


def _plan(
    recipients: list[str],
    envelope: Envelope,
    *,
    local_sender: bool,
    size: int,
    classes: dict | None = None,
    dedupe_message_id: str = "",
    reserve_message_id: bool = False,
) -> _Plan:
    """Decide every (already normalised, de-duplicated) recipient, in a few queries. With
    `dedupe_message_id`, a box that already holds a message of that Message-ID is set apart
    (same query: an EXISTS annotation)."""
    plan = _Plan()
    if classes is None:
        classes = classify_domains({domain_of(r) for r in recipients})
    local_addresses = [r for r in recipients if classes[domain_of(r)] in ("hosted", "patient")]
    boxes = (
        {box.address: box for box in _local_boxes(local_addresses, dedupe_message_id, reserve_message_id)}
        if local_addresses
        else {}
    )
    plan.message_pk = next((getattr(box, "reserved_message_id", None) for box in boxes.values()), None)
    policy = None
    sender_box = envelope.sender_mailbox
    for address in recipients:
        domain = domain_of(address)
        kind = classes[domain]
        decision = None
        box = None
        if getattr(boxes.get(address), "already_delivered", False):
            plan.duplicates[address] = boxes[address]
            continue
        if kind == "untrusted":
            decision = refuse_untrusted(domain)
        elif kind == "trusted":
            if not local_sender:
                decision = refuse_not_hosted(domain)
        elif kind == "hosted":
            box = boxes.get(address)
            if box is None or box.kind == Mailbox.Kind.PATIENT:
                decision = refuse_unknown()
        else:  # the patient domain
            if size > settings.PATIENT_MAX_MESSAGE_BYTES:
                decision = refuse_too_large(size, settings.PATIENT_MAX_MESSAGE_BYTES, automatic_return=True)
            else:
                policy = policy or get_policy()
                decision = policy.decide_recipient(envelope, address)
                if decision.deliver:
                    box = boxes.get(address)
                    decision = None
                    if box is None or box.kind != Mailbox.Kind.PATIENT:
                        decision = refuse_patient_without_box(address.split("@", 1)[0])
        if decision is None and box is not None:
            if box.max_message_bytes and size > box.max_message_bytes:
                decision = refuse_too_large(size, box.max_message_bytes, automatic_return=box.is_patient)
            elif size and box.used_bytes + size > box.quota_bytes:
                decision = refuse_over_quota()
        if decision is None and sender_box is not None and sender_box.kind == Mailbox.Kind.PATIENT:
            policy = policy or get_policy()
            patient_decision = policy.decide_patient_sender(envelope, address)
            if not patient_decision.deliver:
                decision = patient_decision
        if decision is not None and not decision.deliver:
            plan.refused[address] = decision
        elif box is not None:
            plan.local[address] = box
        else:
            plan.external.setdefault(domain, []).append(address)
    return plan


def _local_boxes(addresses: list[str], dedupe_message_id: str = "", reserve_message_id: bool = False):
    """The active boxes of `addresses`, each with the id of its INBOX (`inbox_folder_id`) and,
    with `dedupe_message_id`, whether it already holds a message of that Message-ID
    (`already_delivered`): one query. It runs for every message, so its SQL is written once
    here rather than compiled by the ORM each time, and on PostgreSQL it is a prepared statement
    of the connection: planning it cost more than running it. With `reserve_message_id` (on
    PostgreSQL) each row also carries a fresh value of the Message id sequence
    (`reserved_message_id`), which saves `send_message` a round trip."""
    from django.db import connection

    boxes, folders, entries, messages = (model._meta.db_table for model in (Mailbox, Folder, Entry, Message))
    # Table names from the models; every value is a bound parameter.
    select = (
        "SELECT b.id, b.kind, b.address, b.quota_bytes, b.used_bytes, b.max_message_bytes, b.display_name, "  # noqa: S608
        f'(SELECT f.id FROM "{folders}" f WHERE f.mailbox_id = b.id AND f.role = {{role}} ORDER BY f.id LIMIT 1) '
        "AS inbox_folder_id, "
        f'EXISTS (SELECT 1 FROM "{entries}" e INNER JOIN "{messages}" m ON m.id = e.message_id '
        "WHERE e.mailbox_id = b.id AND m.message_id = {message_id}) AS already_delivered{reserve} "
        f'FROM "{boxes}" b WHERE b.address {{addresses}} AND b.is_active'
    )
    role, message_id = Folder.Role.INBOX.value, dedupe_message_id or None  # NULL matches no message
    if connection.vendor != "postgresql":
        placeholders = ", ".join(["%s"] * len(addresses))
        sql = select.format(role="%s", message_id="%s", addresses=f"IN ({placeholders})", reserve="")
        return Mailbox.objects.raw(sql, [role, message_id, *addresses])
    name = f"{_LOCAL_BOXES}_id" if reserve_message_id else _LOCAL_BOXES
    connection.ensure_connection()
    prepared = _prepared.setdefault(connection.connection, set())
    if name not in prepared:
        reserve = ", nextval($4::regclass) AS reserved_message_id" if reserve_message_id else ""
        with connection.cursor() as cursor:
            cursor.execute(
                f"PREPARE {name} (text, text, text[]{', text' if reserve else ''}) AS "
                + select.format(role="$1", message_id="$2", addresses="= ANY($3)", reserve=reserve)
            )
        prepared.add(name)
    params = [role, message_id, list(addresses)]
    if reserve_message_id:
        params.append(_message_sequence(connection))
    return Mailbox.objects.raw(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)


# Prepared statements live as long as their PostgreSQL session: the psycopg connections that
# have them (a new connection prepares again).
_LOCAL_BOXES = "mss_local_boxes"
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --- storage -----------------------------------------------------------------------------------


def _thread_key(parsed: ParsedMessage, message_id: str) -> str:
    candidates = ([parsed.in_reply_to] if parsed.in_reply_to else []) + list(reversed(parsed.references))
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
    return parsed.references[0] if parsed.references else parsed.in_reply_to


def _event(action, *, actor=None, actor_label="", message_id=None, mailbox_id=None, outcome="ok", detail=None):
    return {
        "action": action,
        "actor": actor if getattr(actor, "is_authenticated", False) else None,
        "actor_label": actor_label,
        "object_type": "message",
        "object_id": str(message_id or ""),
        "mailbox_id": mailbox_id,
        "message_id": message_id,
        "outcome": outcome,
        "detail": detail or {},
    }


# --- the delivery function ---------------------------------------------------------------------


def send_message(
    raw: bytes,
    *,
    envelope_from: str,
    envelope_to: list[str],
    source: str,
    actor=None,
    sender_mailbox: Mailbox | None = None,
) -> DeliveryResult:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    size = len(raw)
    sender_box_id = sender_mailbox.pk if sender_mailbox is not None else None

    def refused_whole(code: str, reason: str, refused: dict | None = None, smtp_code: int | None = None):
        record_many(
            [
                _event(
                    AuditEvent.Action.REFUSED,
                    actor=actor,
                    actor_label=source,
                    mailbox_id=sender_box_id,
                    outcome=code,
                    detail={"source": source, "recipients": len(envelope_to)},
                )
            ]
        )
        log.info("delivery refused: code=%s source=%s sender_box=%s", code, source, sender_box_id)
        return DeliveryRefused(code, reason, smtp_code, refused)

    # 1. Sender, size, parsing.
    sender = "" if (envelope_from or "").strip() in ("", "<>") else envelope_from
    try:
        sender = normalise_address(sender) if sender else ""
    except InvalidAddress:
        raise refused_whole("invalid_address", refuse_invalid(envelope_from).reason) from None
    if sender_mailbox is not None:
        if not sender_mailbox.is_active:
            raise refused_whole("sender_not_allowed", _("Cette boîte aux lettres est désactivée."))
        if sender and sender != sender_mailbox.address:
            raise refused_whole(
                "sender_not_allowed", _("L'expéditeur de l'enveloppe n'est pas la boîte aux lettres qui envoie.")
            )
    limit = settings.MAILBOX_MAX_MESSAGE_BYTES
    if sender_mailbox is not None and sender_mailbox.max_message_bytes:
        limit = min(limit, sender_mailbox.max_message_bytes)
    if size > limit:
        raise refused_whole("too_large", refuse_too_large(size, limit).reason)
    try:
        parsed = parse_message(raw)
    except MalformedMessage:
        raise refused_whole(
            "malformed", _("Le message est illisible : ce n'est pas un message électronique.")
        ) from None
    if not envelope_to:
        raise refused_whole("unknown_recipient", _("Le message n'a aucun destinataire."))

    # 2. Recipients.
    refused: dict[str, Decision] = {}
    recipients: list[str] = []
    for value in envelope_to:
        try:
            address = normalise_address(value)
        except InvalidAddress:
            refused[str(value)] = refuse_invalid(str(value))
            continue
        if address not in recipients:
            recipients.append(address)
    # One query classifies the sender's and the recipients' domains (trust space).
    sender_domain = domain_of(sender) if sender else ""
    header_domain = domain_of(parsed.from_address) if parsed.from_address else ""
    classes = classify_domains({domain_of(r) for r in recipients} | {d for d in (sender_domain, header_domain) if d})
    if sender and classes[sender_domain] == "untrusted":
        raise refused_whole("untrusted_domain", refuse_untrusted(sender_domain).reason)
    # Mail that came in over SMTP is never relayed out: only local senders reach other operators.
    local_sender = sender_mailbox is not None or (source == "system")
    # Sender identity (RULES.md §1, no repudiation): a local box sends under its own address, and
    # mail from outside never claims one of our domains, in the envelope or in `From:`.
    if sender_mailbox is not None:
        if parsed.from_address and parsed.from_address.lower() != sender_mailbox.address:
            raise refused_whole(
                "sender_not_allowed", _("L'en-tête From du message n'est pas la boîte aux lettres qui envoie.")
            )
    elif not local_sender:
        for domain in (sender_domain, header_domain):
            if domain and classes[domain] in LOCAL_KINDS:
                raise refused_whole("sender_not_allowed", refuse_forged_local(domain).reason)
    message_id = parsed.message_id or f"<{uuid.uuid4().hex}@{domain_of(sender) if sender else 'mssante.invalid'}>"
    envelope = Envelope(
        sender_address=sender,
        sender_mailbox=sender_mailbox,
        subject=parsed.subject,
        size=size,
        message_id=message_id,
        in_reply_to=parsed.in_reply_to,
        references=tuple(parsed.references),
        auto_submitted=parsed.auto_submitted,
        is_report=parsed.is_report,
        x_mss_headers=dict(parsed.x_mss_headers),
    )
    # A peer that did not get our 250 (timeout, lost connection) sends the message again, with
    # the same Message-ID: a box that already holds it does not get a second copy.
    dedupe = parsed.message_id if source == "smtp" else ""
    plan = (
        _plan(
            recipients,
            envelope,
            local_sender=local_sender,
            size=size,
            classes=classes,
            dedupe_message_id=dedupe,
            reserve_message_id=True,
        )
        if recipients
        else _Plan()
    )
    refused.update(plan.refused)
    if plan.duplicates and not plan.local and not plan.external:
        existing = (
            Message.objects.filter(message_id=message_id, entries__mailbox__in=list(plan.duplicates.values()))
            .order_by("-id")
            .first()
        )
        if existing is not None:
            log.info("delivery duplicate: message=%s source=%s boxes=%d", existing.pk, source, len(plan.duplicates))
            return DeliveryResult(message=existing, delivered=[], queued=[], refused=refused)
        # The message holding that Message-ID was purged since: plan again, without the set-apart boxes.
        plan = _plan(
            recipients, envelope, local_sender=local_sender, size=size, classes=classes, reserve_message_id=True
        )
        refused.update(plan.refused)

    # 3. Nobody accepts it: nothing is stored.
    if not plan.local and not plan.external:
        _tell_policy_refused(envelope, None, refused)
        first = next(iter(refused.values()), refuse_unknown())
        raise refused_whole(first.code, first.reason, refused)

    # 4. Store the bytes once, named by content hash, before the rows that point at them.
    sha256, raw_name = store_raw(raw)
    attachment_rows = []
    for position, parsed_attachment in enumerate(parsed.attachments):
        data = parsed_attachment.data
        digest, name = store_attachment(data)
        attachment_rows.append(
            Attachment(
                filename=parsed_attachment.filename[:255],
                content_type=parsed_attachment.content_type[:255],
                size=len(data),
                sha256=digest,
                file=name,
                content_id=parsed_attachment.content_id[:255],
                is_inline=parsed_attachment.is_inline,
                position=position,
            )
        )
        del data

    now = timezone.now()
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                if attempt == 2:
                    _refuse_boxes_now_full(plan, refused, size)
                    if not plan.local and not plan.external:
                        raise _NothingLeft
                delivered = list(dict.fromkeys(plan.local.values()))
                queued = [address for addresses in plan.external.values() for address in addresses]
                box_ids = [box.pk for box in delivered]
                sender_in_sent = sender_box_id is not None and sender_box_id not in box_ids
                writes = _Writes()
                # Quota first, in the same UPDATE that counts the space (never a lost update): a
                # recipient box filled by a concurrent delivery since the plan fails the condition,
                # the transaction rolls back, and the second attempt re-reads the boxes under lock.
                counted = set(box_ids) | ({sender_box_id} if sender_in_sent else set())
                if counted:
                    room = Q(used_bytes__lte=F("quota_bytes") - size)
                    changes = {"used_bytes": F("used_bytes") + size}
                    if sender_box_id is not None:
                        if sender_in_sent:
                            room |= Q(pk=sender_box_id)
                        # Only sending is a use of the box (AU-037); receiving is not.
                        changes["last_used_at"] = Case(
                            When(pk=sender_box_id, then=Value(now)), default=F("last_used_at")
                        )
                    writes.update(Mailbox.objects.filter(room, pk__in=counted), len(counted), **changes)
                message = Message(
                    id=plan.message_pk or writes.next_message_id(),
                    message_id=message_id[:998],
                    in_reply_to=parsed.in_reply_to[:998],
                    references=" ".join(parsed.references),
                    thread_key=_thread_key(parsed, message_id)[:998],
                    from_address=(parsed.from_address or sender)[:254],
                    from_name=parsed.from_name[:300],
                    to=parsed.to,
                    cc=parsed.cc,
                    envelope_from=sender,
                    envelope_to=recipients,
                    subject=parsed.subject,
                    date=parsed.date,
                    text_body=parsed.text_body,
                    html_body=parsed.html_body,
                    mdn_requested_to=parsed.mdn_requested_to[:254],
                    x_mss_headers=parsed.x_mss_headers,
                    auto_submitted=parsed.auto_submitted,
                    is_report=parsed.is_report,
                    report_type=parsed.report_type,
                    has_attachments=any(not a.is_inline for a in attachment_rows),
                    size=size,
                    sha256=sha256,
                    raw=raw_name,
                    sender_mailbox=sender_mailbox,
                )
                if message.pk is None:  # no sequence to reserve from: the message row first
                    writes.flush()
                    message.save(force_insert=True)
                else:
                    writes.insert([message])
                for row in attachment_rows:
                    row.message = message
                writes.insert(attachment_rows)

                # Entries: INBOX of each recipient box, SENT of the sender's box (one entry per box).
                entries = [
                    Entry(
                        mailbox_id=box.pk,
                        message=message,
                        folder_id=_folder_id(box, Folder.Role.INBOX),
                        received_at=now,
                    )
                    for box in delivered
                ]
                if sender_in_sent:
                    entries.append(
                        Entry(
                            mailbox_id=sender_box_id,
                            message=message,
                            folder_id=_folder_id(sender_mailbox, Folder.Role.SENT),
                            received_at=now,
                            seen=True,
                        )
                    )
                writes.insert(entries)

                deliveries = [
                    Delivery(message=message, address=address, mailbox_id=box.pk, status=Delivery.Status.DELIVERED)
                    for address, box in plan.local.items()
                ]
                deliveries += [Delivery(message=message, address=a, status=Delivery.Status.QUEUED) for a in queued]
                refused_deliveries = [
                    Delivery(
                        message=message,
                        address=address[:254],
                        status=Delivery.Status.RETURNED if decision.automatic_return else Delivery.Status.BOUNCED,
                        reason=decision.code[:60],
                    )
                    for address, decision in refused.items()
                ]
                outboxes = [
                    Outbox(message=message, domain=domain, recipients=addresses)
                    for domain, addresses in plan.external.items()
                ]
                # The audit events below name the refused deliveries and the outbox rows: their
                # ids come back first (RETURNING) when there are any.
                writes.insert(deliveries + refused_deliveries, returning=bool(refused_deliveries))
                writes.insert(outboxes, returning=True)
                if refused_deliveries or outboxes:
                    writes.flush()

                events = [
                    _event(
                        AuditEvent.Action.SUBMITTED,
                        actor=actor,
                        actor_label=source,
                        message_id=message.pk,
                        mailbox_id=sender_box_id,
                        detail={
                            "source": source,
                            "delivered": len(delivered),
                            "queued": len(queued),
                            "refused": len(refused),
                            "outbox": [o.pk for o in outboxes],
                        },
                    )
                ]
                events += [
                    _event(AuditEvent.Action.DELIVERED, actor_label=source, message_id=message.pk, mailbox_id=box.pk)
                    for box in delivered
                ]
                events += [
                    _event(
                        AuditEvent.Action.REFUSED,
                        actor_label=source,
                        message_id=message.pk,
                        mailbox_id=sender_box_id,
                        outcome=d.reason[:40],
                        detail={"delivery": d.pk, "status": d.status},
                    )
                    for d in refused_deliveries
                ]
                if parsed.is_report and parsed.report_type == "disposition-notification" and delivered:
                    writes.flush()  # the receipt's own queries come after this message's rows
                    events += _record_read_receipt(parsed, delivered, message)
                writes.insert(audit_rows(events))
                writes.flush()

                if refused:
                    _tell_policy_refused(envelope, message, refused)
                get_policy().after_delivery(message, delivered)
                for outbox in outboxes:
                    transaction.on_commit(functools.partial(_enqueue, outbox.pk))

            break
        except _QuotaRace:
            continue
        except _NothingLeft:
            _tell_policy_refused(envelope, None, refused)
            first = next(iter(refused.values()))
            raise refused_whole(first.code, first.reason, refused) from None
    else:  # a box still changed under the lock (deleted, say): a temporary refusal, the peer retries
        raise refused_whole("over_quota", refuse_over_quota().reason, refused, smtp_code=452)

    log.info(
        "delivery ok: message=%s source=%s delivered=%d queued=%d refused=%d",
        message.pk,
        source,
        len(delivered),
        len(queued),
        len(refused),
    )
    return DeliveryResult(message=message, delivered=delivered, queued=queued, refused=refused)


class _QuotaRace(Exception):
    """A recipient box filled up between the plan and the transaction (rolled back, retried)."""


class _NothingLeft(Exception):
    """On the retry, every recipient box turned out full."""


def _refuse_boxes_now_full(plan: _Plan, refused: dict[str, Decision], size: int) -> None:
    """Inside the transaction: lock the recipient boxes (in id order, so two deliveries never
    deadlock) and move those that no longer have room from `plan.local` to `refused`."""
    ids = sorted({box.pk for box in plan.local.values()})
    room = {
        pk: quota - used
        for pk, used, quota in Mailbox.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "used_bytes", "quota_bytes")
    }
    for address, box in list(plan.local.items()):
        if room.get(box.pk, 0) < size:
            del plan.local[address]
            refused[address] = refuse_over_quota()


# --- the writes of one delivery ----------------------------------------------------------------


class _Writes:
    """The rows of one delivery, written in as few round trips as the database allows.

    On PostgreSQL (psycopg 3, client-side binding) the statements compiled by the ORM are sent
    together in one `execute` (one round trip instead of one per table), inside the delivery's
    transaction: the quota UPDATE's row count is read from the first result, and a failed count
    rolls the whole transaction back. Elsewhere (SQLite in tests) each statement goes through
    the ORM as before. Either way the same statements run, in the same order."""

    def __init__(self):
        from django.db import connection

        self.connection = connection
        self.batched = connection.vendor == "postgresql" and _is_psycopg3()
        self.steps: list[tuple] = []

    def next_message_id(self) -> int | None:
        """The next Message primary key, reserved from its sequence (PostgreSQL only), so that
        the message and the rows that point at it can be written together."""
        if not self.batched:
            return None
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT nextval(%s)", [_message_sequence(self.connection)])
            return cursor.fetchone()[0]

    def update(self, queryset, expected: int, **values) -> None:
        """An UPDATE that must change exactly `expected` rows (or the delivery is retried)."""
        self.steps.append(("update", queryset, expected, values))

    def insert(self, objs: list, *, returning: bool = False) -> None:
        if objs:
            self.steps.append(("insert", objs, returning))

    def flush(self) -> None:
        steps, self.steps = self.steps, []
        if not steps:
            return
        if not self.batched:
            for step in steps:
                if step[0] == "update":
                    _kind, queryset, expected, values = step
                    if queryset.update(**values) != expected:
                        raise _QuotaRace
                else:
                    objs = step[1]
                    type(objs[0]).objects.bulk_create(objs)
            return
        from django.db.models import sql
        from psycopg import ClientCursor

        using = self.connection.alias
        statements = []
        self.connection.ensure_connection()
        mogrifier = ClientCursor(self.connection.connection)
        for step in steps:
            if step[0] == "update":
                _kind, queryset, _expected, values = step
                query = queryset.query.chain(sql.UpdateQuery)
                query.add_update_values(values)
                compiled = [query.get_compiler(using).as_sql()]
            else:
                _kind, objs, returning = step
                model = type(objs[0])
                opts = model._meta
                with_pk = objs[0].pk is not None
                fields = [f for f in opts.concrete_fields if not f.generated and (with_pk or f is not opts.pk)]
                for obj in objs:
                    obj._prepare_related_fields_for_save(operation_name="bulk_create")
                query = sql.InsertQuery(model)
                query.insert_values(fields, objs, raw=False)
                compiler = query.get_compiler(using)
                compiler.returning_fields = [opts.pk] if returning else None
                compiled = compiler.as_sql()
            if len(compiled) != 1:  # one statement per step: its result is read back below
                raise RuntimeError(f"{len(compiled)} statements compiled for one step")
            statements += [mogrifier.mogrify(text, params) for text, params in compiled]
        with self.connection.cursor() as cursor:
            cursor.execute(";\n".join(statements))
            raw_cursor = cursor.cursor
            for index, step in enumerate(steps):
                if index:
                    raw_cursor.nextset()
                if step[0] == "update":
                    if raw_cursor.rowcount != step[2]:
                        raise _QuotaRace
                    continue
                _kind, objs, returning = step
                if returning:
                    for obj, (pk,) in zip(objs, raw_cursor.fetchall(), strict=True):
                        obj.pk = pk
                for obj in objs:
                    obj._state.adding = False
                    obj._state.db = using


def _is_psycopg3() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


_sequences: dict[tuple, str] = {}


def _message_sequence(connection) -> str:
    """The name of the Message id sequence, looked up once per database."""
    key = (connection.alias, connection.settings_dict["NAME"])
    name = _sequences.get(key)
    if name is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [Message._meta.db_table, Message._meta.pk.column])
            name = _sequences[key] = cursor.fetchone()[0]
    return name


def release_space(entries) -> dict[int, int]:
    """Quota accounting when entries are deleted for good (emptied trash, purge): each box gets
    back the encoded size of its deleted messages, in one conditional UPDATE per box that never
    goes below zero. Call it in the transaction that deletes the entries, before the messages
    themselves may go. Returns box id → bytes released."""
    entries = list(entries)
    sizes = dict(Message.objects.filter(pk__in={e.message_id for e in entries}).values_list("pk", "size"))
    freed: dict[int, int] = {}
    for entry in entries:
        freed[entry.mailbox_id] = freed.get(entry.mailbox_id, 0) + sizes.get(entry.message_id, 0)
    for box_id, amount in freed.items():
        if amount:
            Mailbox.objects.filter(pk=box_id).update(used_bytes=Greatest(F("used_bytes") - amount, 0))
    return freed


def _enqueue(outbox_id: int) -> None:
    relay.enqueue(outbox_id)


def _tell_policy_refused(envelope: Envelope, message: Message | None, refused: dict[str, Decision]) -> None:
    from mailboxes.trust import is_patient_domain

    policy = None
    for address, decision in refused.items():
        if "@" in address and (is_patient_domain(domain_of(address)) or decision.automatic_return):
            policy = policy or get_policy()
            policy.refused(envelope, message, address, decision)


def _folder_id(box: Mailbox, role: str) -> int:
    """The id of a system folder of `box` (the INBOX id comes annotated from the recipients'
    query); a box created without its folders gets them now."""
    if role == Folder.Role.INBOX and getattr(box, "inbox_folder_id", None):
        return box.inbox_folder_id
    folder_id = Folder.objects.filter(mailbox_id=box.pk, role=role).values_list("id", flat=True).first()
    if folder_id is None:
        box.ensure_system_folders()
        folder_id = Folder.objects.filter(mailbox_id=box.pk, role=role).values_list("id", flat=True).get()
    return folder_id


def _record_read_receipt(parsed: ParsedMessage, delivered: list[Mailbox], mdn: Message) -> list[dict]:
    """An MDN reached a local box (RFC 8098): the original's Delivery to the Final-Recipient
    becomes "read". Only for originals sent by, or asking receipts for, a box that got the MDN,
    and only when the receipt comes from the Final-Recipient's own domain: nobody reports a
    reading on behalf of another operator's (or our own) user."""
    fields = parsed.report_fields
    original_id = first_msgid(fields.get("original-message-id", ""))
    final = fields.get("final-recipient", "").split(";", 1)[-1].strip().strip("<>").lower()
    disposition = fields.get("disposition", "").lower()
    if not original_id or not final or "displayed" not in disposition:
        return []
    if not parsed.from_address or domain_of(final) != domain_of(parsed.from_address):
        return []
    ids = [box.pk for box in delivered]
    addresses = [box.address for box in delivered]
    rows = list(
        Delivery.objects.filter(message__message_id=original_id, address=final)
        .filter(Q(message__sender_mailbox_id__in=ids) | Q(message__mdn_requested_to__in=addresses))
        .exclude(status=Delivery.Status.READ)
        .values_list("id", "message_id", "mailbox_id")
    )
    if not rows:
        return []
    Delivery.objects.filter(pk__in=[r[0] for r in rows]).update(
        status=Delivery.Status.READ, reason="mdn", updated_at=timezone.now()
    )
    return [
        _event(
            AuditEvent.Action.READ,
            actor_label="mdn",
            message_id=message_id,
            mailbox_id=mailbox_id,
            detail={"delivery": delivery_id, "mdn": mdn.pk},
        )
        for delivery_id, message_id, mailbox_id in rows
    ]
