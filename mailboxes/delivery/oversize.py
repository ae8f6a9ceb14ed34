"""A message over the largest any box takes, from another operator (RULES.md §3 automatic return
3, "maximum size exceeded", whatever operator hosts the sending box).

Such a message is never stored, so the SMTP gateway keeps only its header block and counts the
rest (memory does not grow with it). When every recipient is in the patient domain and the
sender is not the null reverse-path, the patient-domain policy is asked exactly as for any
message (`plan_recipients`, whose policy refuses the size with its own automatic return, or
without one for an automatic message): each patient's return goes back to the sender, relayed
to its operator, and the whole message is refused with those returned refusals, which the
gateway answers 250. Otherwise (a professional among the recipients, the null sender, a header
block that cannot be read) it is the plain size refusal, `552 5.3.4`, and nothing is returned.

`check_declared_size` gives the same answer one recipient at a time when the peer declared the
size at MAIL (RFC 1870 `SIZE=`).
"""

from __future__ import annotations

from django.conf import settings

from mailboxes.delivery import senders
from mailboxes.delivery.decisions import DeliveryRefused, refuse_too_large, refuse_unknown
from mailboxes.delivery.planning import normalise_recipients, plan_recipients
from mailboxes.delivery.send import envelope_for, refused_whole
from mailboxes.delivery.writing import tell_policy_refused
from mailboxes.mime import MalformedMessage, parse_message
from mailboxes.patient_domain import Decision, get_policy, is_patient_address
from mailboxes.trust import classify_domains


def largest_message() -> int:
    """The largest message any box takes: the mailbox limit or the patient domain's."""
    return max(settings.MAILBOX_MAX_MESSAGE_BYTES, get_policy().message_limit() or 0)


def returns_may_answer(envelope_from: str, recipients: list[str]) -> bool:
    """Whether the patient domain's automatic returns may answer a message too large for every
    box: only patients among the recipients, and a sender to send the returns to."""
    return bool(recipients) and not senders.is_null_sender(envelope_from) and all(map(is_patient_address, recipients))


def check_declared_size(envelope_from: str, address: str, size: int | None) -> Decision:
    """RCPT TO after `MAIL FROM:<…> SIZE=size`: over the mailbox limit, a professional (any
    address outside the patient domain) is refused at once; a patient is accepted, since the
    policy answers the size with its automatic return after DATA; with the null sender nothing
    answers, so a patient too is refused when the size is over every limit."""
    if size is None or size <= settings.MAILBOX_MAX_MESSAGE_BYTES:
        return Decision.ok()
    if not is_patient_address(address):
        return refuse_too_large(size, settings.MAILBOX_MAX_MESSAGE_BYTES)
    if senders.is_null_sender(envelope_from) and size > largest_message():
        return refuse_too_large(size, largest_message())
    return Decision.ok()


def oversized_refusal(
    head: bytes, size: int, *, envelope_from: str, envelope_to: list[str], source: str
) -> DeliveryRefused:
    """The refusal of a message of `size` bytes, over `largest_message()`, of which only `head`
    (its header block) was kept: nothing is stored, the refusal is audited as any whole
    refusal (`refused_whole`). Its `refused` holds the policy's decisions when the patient
    domain answered each recipient; their automatic returns are queued (`tell_policy_refused`,
    as for any refusal)."""
    try:
        refusal = _refusal(head, size, envelope_from, envelope_to)
    except DeliveryRefused as refused:
        refusal = refused
    return refused_whole(refusal, source, None, None, len(envelope_to))


def _refusal(head: bytes, size: int, envelope_from: str, envelope_to: list[str]) -> DeliveryRefused:
    plain = senders.refused(refuse_too_large(size, largest_message()))
    sender = senders.normalised_sender(envelope_from)
    recipients, invalid = normalise_recipients(envelope_to)
    if invalid or not returns_may_answer(sender, recipients):
        return plain
    try:
        parsed = parse_message(head)
    except MalformedMessage:
        return plain
    classes = classify_domains(senders.domains_to_classify(parsed, sender, recipients))
    senders.check_identity(parsed, sender, None, False, classes)  # the same trust checks as any message
    envelope = envelope_for(parsed, sender, None, size)
    plan = plan_recipients(recipients, envelope, local_sender=False, size=size, classes=classes)
    if plan.accepts_any or plan.duplicates:  # a policy that takes it: the body is gone, refuse plainly
        return plain
    tell_policy_refused(envelope, None, plan.refused)
    first = next(iter(plan.refused.values()), None) or refuse_unknown()
    return DeliveryRefused(first.code, first.reason, refused=plan.refused)
