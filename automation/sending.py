"""One automated message to one patient (issue 9 items 1, 2, 6): the text of a model version
filled for that patient, its standing attachments, sent through `mailboxes.fanout` (one patient,
one message) and so through `mailboxes.delivery.send_message`; and the per-box daily limit.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from automation import fields
from mailboxes.fanout import FanOutResult, send_one_per_patient
from mailboxes.models import Message


@dataclass
class Composed:
    subject: str
    text: str
    missing: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict)


def compose(version, patient, line: dict | None = None, starts_at=None) -> Composed:
    """The subject and text `patient` gets from `version` with the values of `line`."""
    model = version.model
    values = fields.values_for(model, patient, line, starts_at)
    missing = fields.missing(values, version.subject, version.body)
    subject = " ".join(fields.render(version.subject, values).split())
    return Composed(subject=subject, text=fields.render(version.body, values), missing=missing, values=values)


class AttachmentCache:
    """The standing attachments of versions, read once per batch."""

    def __init__(self):
        self._by_version: dict[int, list[tuple[str, str, bytes]]] = {}

    def get(self, version) -> list[tuple[str, str, bytes]]:
        if version.pk not in self._by_version:
            items = []
            for item in version.attachments.all():
                with default_storage.open(item.file, "rb") as handle:
                    items.append((item.filename, item.content_type, handle.read()))
            self._by_version[version.pk] = items
        return self._by_version[version.pk]


def deliver(sender, actor, patient, composed: Composed, attachments, *, source: str) -> FanOutResult:
    return send_one_per_patient(
        sender,
        actor,
        to=[patient.address],
        source=source,
        subject=composed.subject,
        text=composed.text,
        attachments=list(attachments),
    )


def missing_message(names) -> str:
    names = list(names)
    return ngettext("Champ sans valeur : %(f)s.", "Champs sans valeur : %(f)s.", len(names)) % {
        "f": ", ".join(f"{{{{ {n} }}}}" for n in names)
    }


# --- The daily limit of a box (issue 9 item 6) -----------------------------------------------


class DailyLimitReached(Exception):
    def __init__(self, message: str, remaining: int):
        super().__init__(message)
        self.message = message
        self.remaining = remaining


def local_midnight(now=None) -> datetime.datetime:
    local = timezone.localtime(now or timezone.now())
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def sent_today(mailbox, now=None) -> int:
    return Message.objects.filter(sender_mailbox=mailbox, created_at__gte=local_midnight(now)).count()


def remaining_today(mailbox, now=None) -> int:
    return max(settings.AUTOMATION_DAILY_LIMIT - sent_today(mailbox, now), 0)


def check_daily_limit(mailbox, count: int, now=None) -> None:
    """Raise `DailyLimitReached` with a sentence for the secretary when `count` more messages
    would take `mailbox` over its daily limit."""
    remaining = remaining_today(mailbox, now)
    if count > remaining:
        raise DailyLimitReached(
            _(
                "La boîte %(box)s peut encore envoyer %(r)s aujourd'hui (limite quotidienne : %(l)d) : "
                "%(n)s. Réduisez la liste ou reprenez l'envoi demain ; l'administrateur peut relever "
                "la limite (AUTOMATION_DAILY_LIMIT)."
            )
            % {
                "box": mailbox.address,
                "r": french_count(remaining, "message", "messages"),
                "l": settings.AUTOMATION_DAILY_LIMIT,
                "n": french_count(count, "demandé", "demandés"),
            },
            remaining,
        )


def french_count(n: int, one: str, many: str) -> str:
    """`0 message`, `1 message`, `2 messages`: French takes the singular below 2."""
    return f"{n} {one if n < 2 else many}"
