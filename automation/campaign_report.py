"""The report of a campaign (issue 9 items 4 and 5): per line sent, returned, read or failed, and
who answered.

- read: the patient opened the message (their entry is seen; RULES.md §3 reading in the space);
- answered: a message from the patient's box whose `In-Reply-To` (or thread, computed from
  `References`) is the campaign message's `Message-ID`. Replies to an applicative box land in its
  paired organisational box (the patient policy routes them): they are found wherever they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from automation import csvfile
from automation.models import CampaignLine
from mailboxes.delivery import refusal_text
from mailboxes.models import Entry, Mailbox, Message

STATUS_LABELS = {
    CampaignLine.Status.SENT: _("envoyé"),
    CampaignLine.Status.RETURNED: _("retour automatique"),
    CampaignLine.Status.FAILED: _("échec"),
    CampaignLine.Status.INVALID: _("ligne refusée"),
    CampaignLine.Status.CANCELLED: _("annulé"),
    CampaignLine.Status.PENDING: _("à envoyer"),
    CampaignLine.Status.CLAIMED: _("en cours"),
}


# The outcome codes of a line sent (`campaign_sending._send_line`) that are not refusals of the
# delivery path; a refusal's code reads as the delivery path says it (`refusal_text`).
LINE_REASONS = {
    "missing_field": gettext_lazy("Un champ du modèle n'avait pas de valeur pour ce patient : rien n'est parti."),
    "error": gettext_lazy("L'envoi a échoué : rien n'est parti pour ce patient."),
}


def reason_text(line: CampaignLine) -> str:
    """Why a line did not leave, in French: its faults at the check, or the refusal or failure
    of its send; never a code."""
    if line.errors:
        return " ".join(e.get("message", "") for e in line.errors)
    if not line.reason:
        return ""
    if line.reason in LINE_REASONS:
        return str(LINE_REASONS[line.reason])
    return refusal_text(line.reason, line.patient.address if line.patient else "")


@dataclass
class Summary:
    sent: int
    returned: int
    read: int
    failed: int
    answered: int
    lines: int = 0  # every line of the list
    refused: int = 0  # refused at the check (« Vérification »): never sent
    cancelled: int = 0  # left unsent when the sending was cancelled


def _chunks(items, size=2000):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_message_ids(campaign) -> set[int]:
    """Ids of the campaign's messages that their patient opened (one patient per message, so
    the message's only patient entry is theirs)."""
    ids = campaign.lines.filter(status=CampaignLine.Status.SENT).values_list("message_id", flat=True)
    seen: set[int] = set()
    for chunk in _chunks(ids):
        seen |= set(
            Entry.objects.filter(message_id__in=chunk, seen=True, mailbox__kind=Mailbox.Kind.PATIENT).values_list(
                "message_id", flat=True
            )
        )
    return seen


def answered_message_ids(campaign) -> set[int]:
    """Ids of the campaign's messages a patient answered."""
    by_msgid = dict(
        campaign.lines.filter(status=CampaignLine.Status.SENT).values_list("message__message_id", "message_id")
    )
    answered: set[int] = set()
    for chunk in _chunks(by_msgid):
        replies = Message.objects.filter(
            Q(in_reply_to__in=chunk) | Q(thread_key__in=chunk), sender_mailbox__kind=Mailbox.Kind.PATIENT
        ).values_list("in_reply_to", "thread_key", "references")
        for in_reply_to, thread_key, references in replies:
            for candidate in (in_reply_to, thread_key, *(references or "").split()):
                if candidate in by_msgid:
                    answered.add(by_msgid[candidate])
    return answered


def summary(campaign) -> Summary:
    counts = dict(campaign.lines.values_list("status").annotate(n=Count("pk")).order_by())
    return Summary(
        sent=counts.get(CampaignLine.Status.SENT, 0),
        returned=counts.get(CampaignLine.Status.RETURNED, 0),
        failed=counts.get(CampaignLine.Status.FAILED, 0),
        lines=sum(counts.values()),
        refused=counts.get(CampaignLine.Status.INVALID, 0),
        cancelled=counts.get(CampaignLine.Status.CANCELLED, 0),
        read=len(read_message_ids(campaign)),
        answered=len(answered_message_ids(campaign)),
    )


HEADERS = [
    "ligne",
    "matricule INS",
    "nom",
    "prénom",
    "statut",
    "motif",
    "envoyé le",
    "lu",
    "a répondu",
]


def rows(campaign) -> list[list[str]]:
    read, answered = read_message_ids(campaign), answered_message_ids(campaign)
    out = []
    lines = campaign.lines.select_related("patient").order_by("number")
    for line in lines.iterator(chunk_size=2000):
        patient = line.patient
        out.append(
            [
                str(line.number),
                patient.ins if patient else (line.values or {}).get("ins", ""),
                (patient.usage_name or patient.birth_name).upper() if patient else "",
                patient.first_name if patient else "",
                str(STATUS_LABELS.get(line.status, line.status)),
                reason_text(line),
                timezone.localtime(line.sent_at).strftime("%d/%m/%Y %H:%M") if line.sent_at else "",
                "oui" if line.message_id in read else "non",
                "oui" if line.message_id in answered else "non",
            ]
        )
    return out


def report_csv(campaign) -> bytes:
    return csvfile.write_report(rows(campaign), HEADERS)


def answered_lines(campaign, limit: int = 200) -> list[CampaignLine]:
    """The lines whose patient answered, for the campaign page."""
    answered = answered_message_ids(campaign)
    return list(
        campaign.lines.filter(message_id__in=list(answered)[:limit]).select_related("patient").order_by("number")
    )
