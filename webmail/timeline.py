"""The delivery timeline of a sent message (issue 6 §6): submitted, delivered per recipient,
relayed, read (MDN), returned with its reason, from the Delivery rows and the audit events the
delivery path records. Reasons are codes; this module turns them into French for the sender.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext_lazy as _

from audit.models import AuditEvent
from mailboxes.delivery import message_history, refusal_reason
from mailboxes.models import Delivery, Entry, Outbox, SentRecipient

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
    reason = refusal_reason(delivery)
    if not reason:
        return ""
    diagnostic = detail.get("diagnostic")
    return f"{reason} : {diagnostic}" if isinstance(diagnostic, str) and diagnostic else reason


def timeline(entry: Entry) -> dict:
    """Steps in time order, and the current state per recipient (`message_history`: which
    recipient each step concerns)."""
    message = entry.message
    history = message_history(message, TIMELINE_ACTIONS)
    deliveries = history.deliveries
    steps = []
    for item in history.events:
        event, detail, delivery = item.event, item.detail, item.delivery
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
    waiting = relay_rows(message, deliveries)
    states = []
    for d in deliveries:
        state = {
            "address": d.address,
            "status": d.get_status_display(),
            "code": d.status,
            "reason": refusal_reason(d),
            "next_try": "",
            "at": d.updated_at,
        }
        row = waiting.get(d.address.rsplit("@", 1)[-1].lower()) if d.status == Delivery.Status.QUEUED else None
        if row is not None:
            state.update(relay_state(row))
        states.append(state)
    states += kept_states(message, {d.address for d in deliveries})
    return {"steps": steps, "states": states}


def kept_states(message, shown: set[str]) -> list[dict]:
    """The recipients the message does not hold, kept on it when it was sent one copy per
    patient (`SentRecipient`, `mailboxes.fanout.keep_recipients`): a patient's own copy, as its
    delivery stands, and a copy refused whole, « Non distribué » with the reason the patient
    policy gave then (stored, not recomputed)."""
    kept = list(SentRecipient.objects.filter(sent=message).order_by("id"))
    copies = {
        (d.message_id, d.address): d
        for d in Delivery.objects.filter(message_id__in={r.copy_id for r in kept if r.copy_id})
    }
    states = []
    for row in kept:
        if row.address in shown:
            continue
        if row.copy_id is None:
            states.append(
                {
                    "address": row.address,
                    "status": Delivery.Status.BOUNCED.label,
                    "code": Delivery.Status.BOUNCED,
                    "reason": row.reason,
                    "next_try": "",
                    "at": row.created_at,
                }
            )
            continue
        d = copies.get((row.copy_id, row.address))
        if d is not None:
            states.append(
                {
                    "address": d.address,
                    "status": d.get_status_display(),
                    "code": d.status,
                    "reason": refusal_reason(d),
                    "next_try": "",
                    "at": d.updated_at,
                }
            )
    return states


def relay_rows(message, deliveries) -> dict[str, Outbox]:
    """The relay queue's row of each external domain still waiting (one query, none when every
    recipient is local or done)."""
    if not any(d.status == Delivery.Status.QUEUED for d in deliveries):
        return {}
    return {row.domain.lower(): row for row in Outbox.objects.filter(message=message)}


def relay_state(row: Outbox) -> dict:
    """What the sender reads for a recipient waiting for the relay (issue 16 item 5): the last
    attempt's reason and when the next one is due."""
    if row.status == Outbox.Status.SENDING:
        return {"reason": str(_("tentative n° %(n)d en cours") % {"n": row.attempts}), "at": row.updated_at}
    if row.attempts == 0 and not row.last_error:
        return {"reason": str(_("premier envoi en préparation")), "at": row.updated_at}
    reason = _("tentative n° %(n)d échouée : %(why)s") % {"n": row.attempts, "why": relay_error_text(row.last_error)}
    when = row.next_attempt_at
    if when is None:
        next_try = str(_("dès que possible"))
    else:
        local = timezone.localtime(max(when, timezone.now()))
        next_try = str(_("le %(day)s à %(time)s") % {"day": date_format(local, "j F Y"), "time": time_format(local)})
    return {"reason": str(reason), "next_try": next_try, "at": row.updated_at}


SMTP_REPLY_RE = re.compile(r"^([2-5]\d\d)\b")


def relay_error_text(error: str) -> str:
    """The relay's `Outbox.last_error` (a remote reply or the name of a connection error), in
    French for the sender, the technical words kept in brackets for the help desk."""
    error = (error or "").strip()
    if not error:
        return str(_("raison inconnue"))
    if SMTP_REPLY_RE.match(error):
        return str(_("le serveur du destinataire a répondu « %(r)s » (refus temporaire)") % {"r": error})
    if "RELAY_HOST" in error:
        return str(_("aucun relais sortant n'est configuré (l'administrateur doit renseigner RELAY_HOST)"))
    if error == "worker lost during send":
        return str(_("envoi interrompu (le service d'envoi a redémarré)"))
    if error == "stored message unreadable":
        return str(_("le message stocké n'a pas pu être relu"))
    if "SSL" in error or "TLS" in error or "Certificate" in error:
        return str(_("la connexion chiffrée avec le relais a échoué (%(e)s)") % {"e": error})
    if "Auth" in error:
        return str(_("le relais a refusé l'authentification (%(e)s)") % {"e": error})
    return str(_("relais injoignable (%(e)s)") % {"e": error})
