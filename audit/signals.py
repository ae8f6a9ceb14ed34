"""Every change made in the Django admin leaves an audit event (RULES.md §5: every access and
exchange traced). The admin writes a LogEntry for each addition, change and deletion; this
module turns each into an `admin.change` event: the admin as actor, the object type and id, the
kind of change and the names of the changed fields — never their values — or, for an admin action,
the fixed words it logged (`ModelAdmin.log_change(request, obj, "clé révoquée")`): every custom
action logs each object it changes that way, unless the function it calls records its own event.

Every LogEntry is saved on its own (post_save below): deleting a selection writes one per object
through the admin site's `AuditedDeletions` (audit/admin_site.py), instead of Django's single
`bulk_create`, which sends no signal.
"""

import json

from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import translation
from django.utils.text import capfirst
from django.utils.translation import gettext

from audit.events import record
from audit.models import AuditEvent

FLAGS = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}


def changed_fields(change_message: str) -> list[str]:
    try:
        parts = json.loads(change_message or "[]")
    except ValueError:
        return []
    names = []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict):
            names.extend((part.get("changed") or {}).get("fields") or [])
    return names


def action_note(change_message: str) -> str:
    """The words an admin action wrote with `log_change` ("clé révoquée"): a fixed text of the
    code, never a value; empty for the admin's own JSON messages."""
    if not change_message or change_message.lstrip().startswith("["):
        return ""
    return change_message[:100]


def field_label(name: str) -> str:
    """The admin stores the labels of Django's own fields untranslated ("Name", from the msgid
    "name"): the trail keeps them in the site's language. Our labels are French already."""
    with translation.override(settings.LANGUAGE_CODE):
        translated = gettext(name)
        if translated == name and name[:1].isupper():
            translated = capfirst(gettext(name[:1].lower() + name[1:]))
    return translated


def record_log_entry(entry: LogEntry) -> AuditEvent:
    detail = {"change": FLAGS.get(entry.action_flag, str(entry.action_flag))}
    fields = changed_fields(entry.change_message)
    if fields:
        detail["fields"] = [field_label(name) for name in fields]
    note = action_note(entry.change_message)
    if note:
        detail["action"] = note
    return record(
        AuditEvent.Action.ADMIN_CHANGE,
        actor=entry.user,
        object_type=entry.content_type.model if entry.content_type_id else "",
        object_id=entry.object_id or "",
        detail=detail,
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_admin_log_entry")
def record_admin_change(sender, instance: LogEntry, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        record_log_entry(instance)
