"""The delivery timeline of a sent message (issue 6 §6): submitted, delivered per recipient,
relayed, read (MDN), returned with its reason, from the Delivery rows and the audit events the
delivery path records. Reasons are codes; this module turns them into French for the sender.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from audit.models import AuditEvent
from mailboxes.delivery import refusal_text
from mailboxes.models import Delivery, Entry

ACTION_LABELS = {
    AuditEvent.Action.SUBMITTED: _("Soumis"),
    AuditEvent.Action.DELIVERED: _("Distribué"),
    AuditEvent.Action.RELAYED: _("Relayé vers l'opérateur du destinataire"),
    AuditEvent.Action.BOUNCED: _("Non distribué"),
    AuditEvent.Action.REFUSED: _("Refusé"),
    AuditEvent.Action.RETURNED: _("Retour automatique"),
    AuditEvent.Action.MDN_SENT: _("Accusé de lecture reçu"),
}
TIMELINE_ACTIONS = list(ACTION_LABELS)
REFUSED_STATES = (Delivery.Status.BOUNCED, Delivery.Status.RETURNED)


@dataclass
class Step:
    at: object
    label: str
    recipients: str = ""
    reason: str = ""
    outcome: str = "ok"


def step_reason(delivery: Delivery | None, detail: dict) -> str:
    """The refusal text of a refused delivery, with the remote server's diagnostic when a
    non-delivery report gave one (`mailboxes.delivery.bounces`)."""
    if delivery is None or delivery.status not in REFUSED_STATES:
        return ""
    reason = refusal_text(delivery.reason, delivery.address)
    diagnostic = detail.get("diagnostic")
    return f"{reason} : {diagnostic}" if isinstance(diagnostic, str) and diagnostic else reason


def timeline(entry: Entry) -> dict:
    """Steps in time order, and the current state per recipient.

    The delivery path records ids only: a step names its recipient through the Delivery row
    (`detail["delivery"]`) or the recipient box (`mailbox_id` of a "delivered" event).
    """
    message = entry.message
    deliveries = list(Delivery.objects.filter(message=message).order_by("address"))
    by_id = {d.pk: d for d in deliveries}
    by_box = {d.mailbox_id: d for d in deliveries if d.mailbox_id}
    events = list(
        AuditEvent.objects.filter(message_id=message.pk)
        .filter(Q(action__in=TIMELINE_ACTIONS) | Q(action=AuditEvent.Action.READ, actor_label="mdn"))
        .order_by("at", "id")[:200]
    )
    steps = []
    for event in events:
        detail = event.detail if isinstance(event.detail, dict) else {}
        delivery = by_id.get(detail.get("delivery"))
        if delivery is None and event.action in (AuditEvent.Action.DELIVERED, AuditEvent.Action.READ):
            delivery = by_box.get(event.mailbox_id)
        if event.action == AuditEvent.Action.READ:
            label = str(_("Lu (accusé de lecture)"))
        else:
            label = str(ACTION_LABELS.get(event.action, event.action_label))
        count = detail.get("recipients") if isinstance(detail.get("recipients"), int) else None
        steps.append(
            Step(
                at=event.at,
                label=label,
                recipients=delivery.address
                if delivery
                else (str(count) + " " + str(_("destinataire(s)")) if count else ""),
                reason=step_reason(delivery, detail),
                outcome=event.outcome,
            )
        )
    states = [
        {
            "address": d.address,
            "status": d.get_status_display(),
            "code": d.status,
            "reason": refusal_text(d.reason, d.address) if d.status in REFUSED_STATES else "",
            "at": d.updated_at,
        }
        for d in deliveries
    ]
    return {"steps": steps, "states": states}
