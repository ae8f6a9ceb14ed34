"""One patient, one message (issue 9 item 1, issue 15 item 9; RULES.md §3).

A patient never sees another patient's address or INS: whoever writes to several patients at
once — the webmail composer, a message model, a convocation, a reminder, a campaign line — sends
through `send_one_per_patient`, which splits the recipients:

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

from dataclasses import dataclass, field

from mailboxes.compose import build_message, checked_addresses, send_from_mailbox
from mailboxes.delivery import DeliveryRefused, DeliveryResult, send_message
from mailboxes.models import Entry, Mailbox
from mailboxes.patient_domain import Decision, is_patient_address


@dataclass
class FanOutResult:
    """What became of a message sent one copy per patient."""

    results: list[DeliveryResult] = field(default_factory=list)
    refused: dict[str, Decision] = field(default_factory=dict)
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


def patients_among(addresses) -> list[str]:
    """The patient addresses of `addresses`, in order, once each."""
    return list(dict.fromkeys(a for a in addresses if is_patient_address(a)))


def send_one_per_patient(sender: Mailbox, actor, *, to, cc=(), source: str, **content) -> FanOutResult:
    """Send `content` (the keyword arguments of `send_from_mailbox`: subject, text, html,
    attachments, in_reply_to, request_mdn, extra_headers, replied_entry) from `sender` to `to`
    and `cc`, one message per patient."""
    to, cc = checked_addresses(to), checked_addresses(cc)
    patients = patients_among(to + cc)
    outcome = FanOutResult(patient_count=len(patients))
    if len(patients) <= 1:
        outcome.results.append(send_from_mailbox(sender, actor, to=to, cc=cc, source=source, **content))
        outcome.refused.update(outcome.results[0].refused)
        return outcome

    professionals = [a for a in dict.fromkeys(to + cc) if not is_patient_address(a)]
    if professionals:
        _attempt(outcome, lambda: _professionals_copy(sender, actor, to, cc, professionals, source, content))
    for patient in patients:
        _attempt(outcome, lambda p=patient: send_from_mailbox(sender, actor, to=[p], source=source, **content))
    if not outcome.results:
        first = next(iter(outcome.refused.values()))
        raise DeliveryRefused(first.code, first.reason, refused=outcome.refused)
    return outcome


def _attempt(outcome: FanOutResult, send) -> None:
    try:
        result = send()
    except DeliveryRefused as refusal:
        outcome.refused.update(refusal.refused or {})
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
