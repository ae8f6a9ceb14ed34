"""Switching mailboxes off and on (RULES.md §2), one function for the admin and the commands:
a deactivated box is reached by nobody (`mailboxes.access` filters on `is_active`) and receives
nothing; each change is audited."""

from django.db import transaction

from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Mailbox


def deactivate_mailboxes(mailboxes, *, actor=None) -> int:
    return _set_active(mailboxes, False, actor)


def reactivate_mailboxes(mailboxes, *, actor=None) -> int:
    return _set_active(mailboxes, True, actor)


@transaction.atomic
def _set_active(mailboxes, active: bool, actor) -> int:
    ids = [box.pk for box in mailboxes if box.is_active != active]
    Mailbox.objects.filter(pk__in=ids).update(is_active=active)
    for pk in ids:
        record(
            AuditEvent.Action.ADMIN_CHANGE,
            actor=actor,
            actor_label="" if actor else "system",
            object_type="mailbox",
            object_id=pk,
            mailbox_id=pk,
            detail={"change": "activated" if active else "deactivated"},
        )
    return len(ids)
