"""Who sends, and may they (RULES.md §1: trust space, no repudiation; §7: the null sender).

A local box sends under its own address only, while it is active and within its size limit;
mail from outside comes from a trusted operator's domain and never claims one of ours, in the
envelope or in `From:`; its `From:` is in the trust space too (refused otherwise, issue 15
item 2); the null reverse-path `<>` carries only delivery or disposition reports
(`multipart/report`) whose `From:` domain is trusted (issue 15 item 1); a message that has
made more hops than SMTP_HOP_LIMIT (its `Received:` fields) is a loop, refused (RFC 5321 §6.3). `check_sender` answers MAIL FROM for the SMTP gateway; the other
functions are the first steps of `send_message`. Each raises `DeliveryRefused` or returns.
"""

from __future__ import annotations

from django.conf import settings

from mailboxes.delivery.decisions import (
    DeliveryRefused,
    refuse_envelope_not_box,
    refuse_forged_local,
    refuse_from_missing,
    refuse_from_not_box,
    refuse_inactive_box,
    refuse_invalid,
    refuse_malformed,
    refuse_null_sender_not_report,
    refuse_outside_from_missing,
    refuse_several_authors,
    refuse_too_large,
    refuse_too_many_hops,
    refuse_unreadable_header,
    refuse_untrusted,
    refuse_untrusted_from,
)
from mailboxes.mime import MalformedMessage, ParsedMessage, parse_message
from mailboxes.models import Mailbox
from mailboxes.patient_domain import Decision
from mailboxes.trust import InvalidAddress, classify_domains, domain_of, normalise_address

LOCAL_KINDS = frozenset({"hosted", "patient"})


def refused(decision: Decision, refused: dict | None = None) -> DeliveryRefused:
    return DeliveryRefused(decision.code, decision.reason, refused=refused)


def is_null_sender(envelope_from: str | None) -> bool:
    """The null reverse-path `<>` of reports (RFC 5321 §4.5.5), or no sender at all."""
    return (envelope_from or "").strip() in ("", "<>")


def normalised_sender(envelope_from: str | None) -> str:
    """The envelope sender, normalised; "" for the null reverse-path."""
    if is_null_sender(envelope_from):
        return ""
    try:
        return normalise_address(envelope_from or "")
    except InvalidAddress:
        raise refused(refuse_invalid(envelope_from or "")) from None


def check_sender(envelope_from: str) -> Decision:
    """MAIL FROM of mail from another operator: the empty reverse-path (reports) is allowed;
    otherwise the sender's domain must be in the trust space and must not be one of ours (hosted
    or patient domain): our own users send through their box, never from outside."""
    try:
        address = normalised_sender(envelope_from)
    except DeliveryRefused:
        return refuse_invalid(envelope_from)
    if not address:
        return Decision.ok()
    domain = domain_of(address)
    kind = classify_domains({domain})[domain]
    if kind == "untrusted":
        return refuse_untrusted(domain)
    if kind in LOCAL_KINDS:
        return refuse_forged_local(domain)
    return Decision.ok()


def check_sending_box(sender: str, sender_mailbox: Mailbox | None) -> None:
    """A local box sends while active, and under its own address."""
    if sender_mailbox is None:
        return
    if not sender_mailbox.is_active:
        raise refused(refuse_inactive_box())
    if sender and sender != sender_mailbox.address:
        raise refused(refuse_envelope_not_box())


def parse_within_limit(raw: bytes, sender_mailbox: Mailbox | None) -> ParsedMessage:
    """The message parsed once, after its *encoded* size (`len(raw)`) was checked against the
    mailbox limit and the sending box's own."""
    limit = settings.MAILBOX_MAX_MESSAGE_BYTES
    if sender_mailbox is not None and sender_mailbox.max_message_bytes:
        limit = min(limit, sender_mailbox.max_message_bytes)
    if len(raw) > limit:
        raise refused(refuse_too_large(len(raw), limit))
    try:
        return parse_message(raw)
    except MalformedMessage:
        raise refused(refuse_malformed()) from None


def check_header_block(parsed: ParsedMessage) -> None:
    """Every field of the header block is readable (RFC 5322 §2.2): a line without a colon, a
    name with a space or tab before its colon, a Unix `From ` line would end this parse's
    fields where a mail client may read on, and show an author no rule here checked."""
    if parsed.unreadable_header_line:
        raise refused(refuse_unreadable_header())


def over_hop_limit(received_count: int) -> bool:
    """More `Received:` fields than SMTP_HOP_LIMIT: the message is looping (RFC 5321 §6.3)."""
    return received_count > settings.SMTP_HOP_LIMIT


def is_looping(headers) -> bool:
    """A stored message's header fields (an `email.message.Message`) over the hop limit: what an
    automatic forward or absence reply must not answer (its copy would be refused one hop later)."""
    return over_hop_limit(len(headers.get_all("received") or []))


def check_hops(parsed: ParsedMessage) -> None:
    """A message over the hop limit is refused whole, whoever hands it over: the gateway (a
    loop between operators), a forward (a box forwarding to itself through a peer), a client."""
    if over_hop_limit(parsed.received_count):
        raise refused(refuse_too_many_hops(parsed.received_count, settings.SMTP_HOP_LIMIT))


def check_identity(
    parsed: ParsedMessage, sender: str, sender_mailbox: Mailbox | None, local_sender: bool, classes: dict
) -> None:
    """RULES.md §1, no repudiation: a trusted sender domain; a local box sends under its own
    address in `From:` too; mail from outside never claims one of our domains, shows a `From:`
    in the trust space, and uses the null sender only for reports. `classes` is
    `classify_domains` of the sender's, the `From:` and the recipients' domains."""
    sender_domain = domain_of(sender) if sender else ""
    header_domain = domain_of(parsed.from_address) if parsed.from_address else ""
    if sender and classes[sender_domain] == "untrusted":
        raise refused(refuse_untrusted(sender_domain))
    if sender_mailbox is not None:
        check_local_from(parsed, sender_mailbox)
    elif not local_sender:
        for domain in (sender_domain, header_domain):
            if domain and classes[domain] in LOCAL_KINDS:
                raise refused(refuse_forged_local(domain))
        check_outside_from(parsed, sender, header_domain, classes)


def check_local_from(parsed: ParsedMessage, sender_mailbox: Mailbox) -> None:
    """A local box is the one author of what it sends: its address alone in `From:`. A message
    without a readable `From:` (none, a name without address, a group, `From:` empty) or with
    another author beside the box (a second address or a second `From:` field) passed, and its
    recipients saw an author the box could disown (submission, where the client writes the
    header; the webmail and the API write it themselves)."""
    if parsed.from_count == 0:
        raise refused(refuse_from_missing())
    if parsed.from_count > 1:
        raise refused(refuse_several_authors())
    if parsed.from_address.lower() != sender_mailbox.address:
        raise refused(refuse_from_not_box())


def check_outside_from(parsed: ParsedMessage, sender: str, header_domain: str, classes: dict) -> None:
    """Mail from another operator: the author (`From:`) is in the trust space, whatever the
    envelope says; with the null sender it must moreover be a report (RFC 3464 / 8098)."""
    if not sender and not parsed.is_report:
        raise refused(refuse_null_sender_not_report())
    if parsed.from_count == 0:
        # RFC 5322 §3.6: a message has an author; without one the reader's client shows whatever
        # it finds (the envelope sender, or nothing), which no rule here checked.
        raise refused(refuse_outside_from_missing())
    if not header_domain:
        if not sender:
            raise refused(refuse_null_sender_not_report())
        return
    if classes[header_domain] == "untrusted":
        raise refused(refuse_untrusted_from(header_domain))


def domains_to_classify(parsed: ParsedMessage, sender: str, recipients: list[str]) -> set[str]:
    """The domains of the recipients, the envelope sender and `From:`: one query classifies them."""
    domains = {domain_of(r) for r in recipients}
    if sender:
        domains.add(domain_of(sender))
    if parsed.from_address:
        domains.add(domain_of(parsed.from_address))
    return domains
