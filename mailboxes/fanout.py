"""One patient, one message (issue 9 item 1, issue 15 item 9; RULES.md §3).

A patient never sees another patient's address or INS. Which recipients get a copy of their own
is the patient-domain policy's rule (`own_copies`, patients/policy.py); this module sends the
copies, each through the one delivery path. Whoever writes to several patients at once — the
webmail composer, a message model, a convocation, a reminder, a campaign line — sends through
`send_one_per_patient`; a message that arrives already written — a desktop client's submission,
another operator's message over the SMTP gateway — goes through `deliver_one_per_patient`,
which gives each such patient the same bytes with `To:` naming them alone (no `Cc:`, `Bcc:`,
`Resent-To/Cc/Bcc:`), the same Message-ID, and the others the message as written.

`send_one_per_patient` splits the recipients:

- at most one patient among the recipients: one message, as typed (a message may carry one
  patient and professionals, RULES.md §3);
- several patients: one message per patient, addressed to that patient alone (`To:` names only
  them), and, when professionals were addressed too, one copy for the professionals whose
  headers list every recipient as typed (they see the list) and whose envelope reaches only
  them.

Every copy goes through `mailboxes.compose.send_from_mailbox`, so through the one delivery path.
A copy refused for its recipients (closed space, unknown patient…) does not stop the others; when
every copy is refused, `DeliveryRefused` carries every refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailboxes import delivery
from mailboxes.compose import build_message, checked_addresses, send_from_mailbox
from mailboxes.delivery import DeliveryRefused, DeliveryResult, refusal_text, send_message
from mailboxes.mime import parse_address_list
from mailboxes.models import Entry, Mailbox, SentRecipient
from mailboxes.patient_domain import Decision, get_policy, is_patient_address


@dataclass
class FanOutResult:
    """What became of a message sent one copy per patient."""

    results: list[DeliveryResult] = field(default_factory=list)
    refused: dict[str, Decision] = field(default_factory=dict)
    # Copies refused whole (nothing stored), kept for the SMTP code when every copy is.
    refusals: list[DeliveryRefused] = field(default_factory=list)
    # A recipient of a copy refused whole → that copy's Message-ID (its automatic return's
    # In-Reply-To; `DeliveryRefused.message_ids`).
    refused_message_ids: dict[str, str] = field(default_factory=dict)
    # How many patients were addressed (the composer says "N messages, one per patient").
    patient_count: int = 0

    @property
    def split(self) -> bool:
        return self.patient_count > 1

    @property
    def primary(self) -> DeliveryResult | None:
        """The copy the sender is shown after sending: the professionals' copy when there is
        one (it lists everybody), else the first patient's."""
        return self.results[0] if self.results else None

    @property
    def delivered_count(self) -> int:
        return sum(len(r.delivered) + len(r.queued) for r in self.results)

    @property
    def held(self) -> set[str]:
        """The recipients some stored copy holds (delivered, queued or refused within it)."""
        return {a for r in self.results for a in recipients_of(r)}

    @property
    def refused_whole(self) -> dict[str, Decision]:
        """The recipients of the copies refused whole (nothing stored for them: a patient's
        closed space, wrong INS key, no such patient), with the policy's decision."""
        held = self.held
        return {a: d for a, d in self.refused.items() if a not in held}


def recipients_of(result: DeliveryResult) -> list[str]:
    """A stored copy's recipients: delivered here, queued for other operators, refused."""
    return [*(box.address for box in result.delivered), *result.queued, *result.refused]


def keep_recipients(sent, outcomes: list[FanOutResult]) -> None:
    """The recipients of one sending that `sent` (the message its sender is shown: the
    webmail's sent copy, the `id` a `POST /messages` answers with) does not hold, kept on it
    (`SentRecipient`): every other copy's recipients, then each copy refused whole with the
    policy's code, its French reason and the Message-ID it had (its automatic return's
    `In-Reply-To`). The webmail's delivery timeline and `GET /messages/{id}` read them. Call it
    in the sending's transaction."""
    rows: dict[str, SentRecipient] = {}
    for outcome in outcomes:
        for result in outcome.results:
            if result.message.pk != sent.pk:
                for address in recipients_of(result):
                    rows.setdefault(
                        address,
                        SentRecipient(
                            sent=sent, address=address, copy=result.message, message_id=result.message.message_id
                        ),
                    )
    for outcome in outcomes:
        for address, decision in outcome.refused_whole.items():
            rows.setdefault(
                address,
                SentRecipient(
                    sent=sent,
                    address=address,
                    message_id=outcome.refused_message_ids.get(address, ""),
                    code=decision.code,
                    reason=str(decision.reason or refusal_text(decision.code, address))[:500],
                ),
            )
    held_by_sent = {a for o in outcomes for r in o.results if r.message.pk == sent.pk for a in recipients_of(r)}
    SentRecipient.objects.bulk_create([r for a, r in rows.items() if a not in held_by_sent], ignore_conflicts=True)


def patients_among(addresses) -> list[str]:
    """The patient addresses of `addresses`, in order, once each."""
    return list(dict.fromkeys(a for a in addresses if is_patient_address(a)))


def send_one_per_patient(sender: Mailbox, actor, *, to, cc=(), source: str, **content) -> FanOutResult:
    """Send `content` (the keyword arguments of `send_from_mailbox`: subject, text, html,
    attachments, in_reply_to, request_mdn, extra_headers, replied_entry) from `sender` to `to`
    and `cc`, one message per patient."""
    to, cc = checked_addresses(to), checked_addresses(cc)
    patients = get_policy().own_copies(to + cc, to + cc)
    outcome = FanOutResult(patient_count=len(patients))
    if not patients:
        outcome.results.append(send_from_mailbox(sender, actor, to=to, cc=cc, source=source, **content))
        outcome.refused.update(outcome.results[0].refused)
        return outcome

    professionals = [a for a in dict.fromkeys(to + cc) if not is_patient_address(a)]
    if professionals:
        _attempt(outcome, lambda: _professionals_copy(sender, actor, to, cc, professionals, source, content))
    for patient in patients:
        _attempt(outcome, lambda p=patient: send_from_mailbox(sender, actor, to=[p], source=source, **content))
    _raise_when_nothing_sent(outcome)
    return outcome


def _raise_when_nothing_sent(outcome: FanOutResult) -> None:
    """Every copy refused: one DeliveryRefused carrying every refusal, temporary (4xx) when one
    of the copies was refused for the time being, so that an SMTP peer tries again."""
    if outcome.results:
        return
    temporary = [r for r in outcome.refusals if r.smtp_code // 100 == 4]
    first = temporary[0] if temporary else outcome.refusals[0]
    raise DeliveryRefused(
        first.code, first.reason, first.smtp_code, refused=outcome.refused, message_ids=outcome.refused_message_ids
    )


def _attempt(outcome: FanOutResult, send) -> None:
    try:
        result = send()
    except DeliveryRefused as refusal:
        outcome.refusals.append(refusal)
        outcome.refused.update(refusal.refused or {})
        outcome.refused_message_ids.update(refusal.message_ids)
        return
    outcome.results.append(result)
    outcome.refused.update(result.refused)


def _professionals_copy(sender, actor, to, cc, professionals, source, content) -> DeliveryResult:
    """The copy for the professionals: its headers name every recipient as typed, its envelope
    reaches the professionals only (the patients get their own copies)."""
    content = dict(content)
    replied_entry = content.pop("replied_entry", None)
    raw = build_message(sender=sender, to=to, cc=cc, **content)
    result = send_message(
        raw,
        envelope_from=sender.address,
        envelope_to=professionals,
        source=source,
        actor=actor,
        sender_mailbox=sender,
    )
    if replied_entry is not None:
        Entry.objects.filter(pk=replied_entry.pk).update(answered=True)
    elif content.get("in_reply_to") is not None:
        Entry.objects.filter(mailbox=sender, message=content["in_reply_to"]).update(answered=True)
    return result


# --- A message already written: a desktop client's, another operator's ---------------------------

HEADER_END = re.compile(rb"\r?\n\r?\n")
FIELD_START = re.compile(rb"\r?\n(?![ \t])")  # a line break not followed by a folded line
FOLD = re.compile(rb"\r?\n(?=[ \t])")
RECIPIENT_FIELD = re.compile(rb"(?:resent-)?(?:to|cc|bcc)[ \t]*:", re.IGNORECASE)


def _head(raw: bytes) -> tuple[bytes, bytes]:
    end = HEADER_END.search(raw)
    return (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")


def named_addresses(raw: bytes) -> list[str]:
    """The addresses the message's recipient fields name (`To`, `Cc`, `Bcc`, `Resent-*`), read
    from its header block alone (the body is neither read nor copied)."""
    head, _ = _head(raw)
    values = [
        FOLD.sub(b"", line.split(b":", 1)[1]).decode("utf-8", "replace")
        for line in FIELD_START.split(head)
        if RECIPIENT_FIELD.match(line)
    ]
    return [item["address"] for item in parse_address_list(values)]


def addressed_to_alone(raw: bytes, address: str) -> bytes:
    """`raw` with its recipient fields replaced by one `To:` naming `address` alone, where the
    first of them was; every other byte as it was (body, Message-ID, signatures of parts)."""
    head, rest = _head(raw)
    kept: list[bytes] = []
    at = None
    for line in FIELD_START.split(head):
        if RECIPIENT_FIELD.match(line):
            at = len(kept) if at is None else at
            continue
        kept.append(line)
    kept.insert(len(kept) if at is None else at, b"To: " + address.encode("ascii", "replace"))
    newline = b"\n" if b"\n" in head and b"\r\n" not in head else b"\r\n"  # the message's own
    return newline.join(kept) + rest


def deliver_one_per_patient(
    raw: bytes,
    *,
    envelope_from: str,
    envelope_to: list[str],
    source: str,
    actor=None,
    sender_mailbox: Mailbox | None = None,
    trace: bytes = b"",
) -> FanOutResult:
    """`send_message` for a message already written (a desktop client's submission, another
    operator's message over SMTP), one copy per patient when the policy says so (`own_copies`):
    the recipients who get it as written first (the sender's Sent copy of that one is the
    message as the client wrote it), then each such patient their own copy, `To:` naming them
    alone. A copy refused whole does not stop the others; when every copy is, DeliveryRefused
    carries every refusal. A message that needs no split is one `send_message`, as before."""
    # Only patient recipients ever get a copy of their own (the interface's contract): mail to
    # professionals alone, most of the gateway's, does not have its header read here.
    reaches_patients = any(is_patient_address(a) for a in envelope_to)
    own = get_policy().own_copies(named_addresses(raw), envelope_to) if reaches_patients else []
    common = {"envelope_from": envelope_from, "source": source, "actor": actor, "sender_mailbox": sender_mailbox}
    if not own:
        result = delivery.send_message(raw, envelope_to=envelope_to, trace=trace, **common)
        return FanOutResult(results=[result], refused=dict(result.refused))
    outcome = FanOutResult(patient_count=len(own))
    as_written = [a for a in envelope_to if a not in own]
    if as_written:
        _attempt(outcome, lambda: delivery.send_message(raw, envelope_to=as_written, trace=trace, **common))
    for patient in own:
        copy = addressed_to_alone(raw, patient.strip().lower())
        _attempt(outcome, lambda c=copy, p=patient: delivery.send_message(c, envelope_to=[p], trace=trace, **common))
    _raise_when_nothing_sent(outcome)
    return outcome
