"""Sorting rules of a box (RULES.md §6 "filtering of incoming mail"): "when the sender / the
subject / the recipients contain …, move to a folder, flag, mark read".

A rule matches when its text appears in the field, ignoring case and accents ("echographie"
finds "Échographie"). Every matching rule of the box applies, in order; the first one that moves
decides the folder. Rules act on the new INBOX entry inside the delivery transaction
(`mailboxes.box_actions`), so the message never shows in the inbox first.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import record_many
from audit.models import AuditEvent
from mailboxes.models import BoxRule, Entry, Folder, Mailbox, Message

MOVE_TARGET_ROLES = (Folder.Role.USER, Folder.Role.ARCHIVE, Folder.Role.TRASH)


def fold(text: str) -> str:
    """Lower case without accents, for "contains" comparisons."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def field_text(message: Message, field: str) -> str:
    if field == BoxRule.Field.FROM:
        return f"{message.from_name} {message.from_address}"
    if field == BoxRule.Field.SUBJECT:
        return message.subject or ""
    people = list(message.to or []) + list(message.cc or [])
    return " ".join(f"{p.get('name', '')} {p.get('address', '')}" for p in people)


def matches(rule: BoxRule, message: Message) -> bool:
    needle = fold(rule.contains).strip()
    return bool(needle) and needle in fold(field_text(message, rule.field))


@dataclass
class Outcome:
    folder_id: int | None = None
    flagged: bool = False
    seen: bool = False
    rule_ids: tuple = ()


def outcome_for(rules: list[BoxRule], message: Message) -> Outcome:
    outcome = Outcome()
    matched = []
    for rule in rules:
        if not matches(rule, message):
            continue
        matched.append(rule.pk)
        if rule.move_to_id and outcome.folder_id is None:
            outcome.folder_id = rule.move_to_id
        outcome.flagged |= rule.flag
        outcome.seen |= rule.mark_read
    outcome.rule_ids = tuple(matched)
    return outcome


def apply_rules(message: Message, box_ids: list[int]) -> None:
    """Inside the delivery transaction: the rules of `box_ids` act on `message`'s INBOX entries."""
    if not box_ids:
        return
    rules: dict[int, list[BoxRule]] = {}
    for rule in BoxRule.objects.filter(mailbox_id__in=box_ids, enabled=True).select_related("move_to"):
        rules.setdefault(rule.mailbox_id, []).append(rule)
    events = []
    for box_id, box_rules in rules.items():
        outcome = outcome_for(box_rules, message)
        if not outcome.rule_ids:
            continue
        changes = {}
        if outcome.folder_id:
            changes["folder_id"] = outcome.folder_id
            target = next(r.move_to for r in box_rules if r.move_to_id == outcome.folder_id)
            if target.role == Folder.Role.TRASH:
                changes["trashed_at"] = timezone.now()
        if outcome.flagged:
            changes["flagged"] = True
        if outcome.seen:
            changes["seen"] = True
        if not changes:
            continue
        Entry.objects.filter(mailbox_id=box_id, message=message, folder__role=Folder.Role.INBOX).update(**changes)
        if outcome.folder_id:
            events.append(
                {
                    "action": AuditEvent.Action.MOVED,
                    "actor_label": "rule",
                    "object_type": "message",
                    "object_id": str(message.pk),
                    "mailbox_id": box_id,
                    "message_id": message.pk,
                    "detail": {"rules": list(outcome.rule_ids), "to_folder": outcome.folder_id},
                }
            )
    if events:
        record_many(events)


# --- Settings (the webmail's page calls these) -------------------------------------------------


def move_targets(mailbox: Mailbox):
    return mailbox.folders.filter(role__in=MOVE_TARGET_ROLES).order_by("position", "name")


@transaction.atomic
def add_rule(mailbox: Mailbox, actor, *, field: str, contains: str, move_to=None, flag=False, mark_read=False):
    contains = " ".join((contains or "").split())
    if field not in BoxRule.Field.values:
        raise ValidationError(_("Choisissez le champ à examiner : l'expéditeur, l'objet ou les destinataires."))
    if not contains:
        raise ValidationError(_("Indiquez le texte que le champ doit contenir."))
    if move_to is not None and (move_to.mailbox_id != mailbox.pk or move_to.role not in MOVE_TARGET_ROLES):
        raise ValidationError(_("Ce dossier n'appartient pas à cette boîte aux lettres."))
    if move_to is None and not flag and not mark_read:
        raise ValidationError(
            _("Choisissez au moins une action : déplacer vers un dossier, suivre ou marquer comme lu.")
        )
    last = BoxRule.objects.filter(mailbox=mailbox).aggregate(last=Max("position"))["last"]
    rule = BoxRule.objects.create(
        mailbox=mailbox,
        position=(last or 0) + 1,
        field=field,
        contains=contains[:200],
        move_to=move_to,
        flag=bool(flag),
        mark_read=bool(mark_read),
    )
    _audit(mailbox, actor, "added", rule.pk)
    return rule


def delete_rule(mailbox: Mailbox, actor, rule_id) -> None:
    deleted, _rows = BoxRule.objects.filter(mailbox=mailbox, pk=rule_id).delete()
    if deleted:
        _audit(mailbox, actor, "deleted", rule_id)


def set_enabled(mailbox: Mailbox, actor, rule_id, enabled: bool) -> None:
    if BoxRule.objects.filter(mailbox=mailbox, pk=rule_id).update(enabled=enabled):
        _audit(mailbox, actor, "enabled" if enabled else "disabled", rule_id)


def _audit(mailbox: Mailbox, actor, change: str, rule_id) -> None:
    from audit.events import record

    record(
        AuditEvent.Action.BOX_SETTINGS_CHANGED,
        actor=actor,
        object_type="boxrule",
        object_id=rule_id,
        mailbox_id=mailbox.pk,
        detail={"change": change},
    )
