"""Non-delivery reports from other operators arriving in a local box (RULES.md §7; RFC 3464;
issue 15 item 5): the original's Delivery to each failed recipient becomes "bounced", with the
report's status and diagnostic kept for the delivery timeline.

The original is found by the envelope id our relay sets (`ENVID`, `relay.envelope_id`, echoed
as `Original-Envelope-Id`), else by the Message-ID of the returned headers (a Postfix report has
no In-Reply-To). Only a message sent by a box that received the report, and only a delivery
that left for another operator (queued or relayed), can be marked: nobody bounces a message
they were not sent, nor a local delivery.
"""

from __future__ import annotations

import re

from django.utils import timezone

from audit.models import AuditEvent
from mailboxes.delivery.events import event
from mailboxes.mime import ParsedMessage
from mailboxes.models import Delivery, Mailbox, Message

ENVID_RE = re.compile(r"^mss\.(\d{1,18})\.([0-9a-f]{16})$")
EXTERNAL = (Delivery.Status.QUEUED, Delivery.Status.RELAYED)


ADDRESS_RE = re.compile(r"<?[^\s<>@;]+@[^\s<>;]+>?")


def diagnostic_text(diagnostic: str) -> str:
    """The remote server's diagnostic for the timeline, addresses taken out (audit details carry
    no address): `smtp; 550 5.1.1 <x@y>: Recipient address rejected` → `550 5.1.1 …: Recipient…`."""
    text = diagnostic.split(";", 1)[-1] if diagnostic.lower().startswith(("smtp;", "x-postfix;")) else diagnostic
    return " ".join(ADDRESS_RE.sub("…", text).split())[:200]


def is_delivery_report(parsed: ParsedMessage) -> bool:
    return parsed.is_report and parsed.report_type == "delivery-status"


def _address(value: str) -> str:
    """`rfc822; a@b.fr` → `a@b.fr`."""
    return value.split(";", 1)[-1].strip().strip("<>").lower()


def failed_recipients(parsed: ParsedMessage) -> dict[str, tuple[str, str]]:
    """Recipient → (status, diagnostic) for each per-recipient block whose action is failed."""
    failed = {}
    for block in parsed.report_blocks:
        if block.get("action", "").strip().lower() != "failed":
            continue
        address = _address(block.get("final-recipient", "")) or _address(block.get("original-recipient", ""))
        if address:
            failed[address] = (block.get("status", "").strip()[:10], block.get("diagnostic-code", "").strip()[:500])
    return failed


def reported_original(parsed: ParsedMessage, senders: list[int], addresses=()) -> Message | None:
    """The message the report is about, sent by one of the boxes `senders`. By Message-ID, the
    latest one that went to a reported address (`addresses`): a message split per patient
    (mailboxes/fanout.py) is several stored messages with one Message-ID, and only the copy for
    the professionals left for another operator."""
    envid = parsed.report_blocks[0].get("original-envelope-id", "").strip() if parsed.report_blocks else ""
    match = ENVID_RE.match(envid)
    originals = Message.objects.filter(sender_mailbox_id__in=senders)
    if match:
        found = originals.filter(pk=int(match.group(1)), sha256__startswith=match.group(2)).first()
        if found is not None:
            return found
    if parsed.reported_message_id:
        same = originals.filter(message_id=parsed.reported_message_id).order_by("-id")
        reported = same.filter(deliveries__address__in=list(addresses)).first() if addresses else None
        return reported or same.first()
    return None


def record_bounce(parsed: ParsedMessage, delivered: list[Mailbox], report: Message) -> list[dict]:
    """A DSN reached a local box: mark the reported deliveries bounced. The audit events to write."""
    failed = failed_recipients(parsed)
    if not failed:
        return []
    original = reported_original(parsed, [box.pk for box in delivered], list(failed))
    if original is None:
        return []
    rows = list(
        Delivery.objects.filter(message=original, address__in=list(failed), status__in=EXTERNAL).values_list(
            "id", "address"
        )
    )
    now = timezone.now()
    events = []
    for delivery_id, address in rows:
        status, diagnostic = failed[address]
        Delivery.objects.filter(pk=delivery_id).update(
            status=Delivery.Status.BOUNCED, reason=f"dsn_{status}"[:60], updated_at=now
        )
        events.append(
            event(
                AuditEvent.Action.BOUNCED,
                actor_label="dsn",
                message_id=original.pk,
                mailbox_id=original.sender_mailbox_id,
                outcome="failed",
                detail={
                    "delivery": delivery_id,
                    "dsn": report.pk,
                    "status": status,
                    "diagnostic": diagnostic_text(diagnostic),
                },
            )
        )
    return events
