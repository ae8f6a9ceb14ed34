"""Writing message models (issue 9 item 2): a model's text changes only by a new version, whose
fields are checked by name before it is saved; standing attachments travel with the version."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from audit.events import record
from audit.models import AuditEvent
from automation import fields
from automation.models import MessageModel, ModelVersion, StandingAttachment
from mailboxes.store import store_attachment


def text_errors(subject: str, body: str, *, is_appointment: bool = False) -> list[str]:
    """French messages naming each unknown field, and the fields a convocation cannot lack."""
    errors = []
    unknown = fields.unknown_fields(subject, body)
    if unknown:
        errors.append(
            _("Champ inconnu : %(f)s. Champs possibles : %(all)s.")
            % {"f": ", ".join("{{ " + n + " }}" for n in unknown), "all": ", ".join(fields.FIELDS)}
        )
    combined = (subject or "") + (body or "")
    if combined.count("[[") != combined.count("]]"):
        errors.append(_("Une partie facultative ouverte par « [[ » n'est pas fermée par « ]] »."))
    return errors


def _check(subject: str, body: str, is_appointment: bool) -> None:
    errors = text_errors(subject, body, is_appointment=is_appointment)
    if not (subject or "").strip():
        errors.append(_("Le modèle a besoin d'un objet."))
    if errors:
        raise ValidationError(errors)


def reminder_days_error(days) -> str | None:
    if not isinstance(days, list) or any(not isinstance(d, int) or d < 1 or d > 60 for d in days):
        return _("Les rappels se donnent en jours avant le rendez-vous, de 1 à 60 (par exemple « 7, 1 »).")
    return None


@transaction.atomic
def create_model(*, mailbox, service, name, subject, body, user=None, attachments=(), **options) -> MessageModel:
    _check(subject, body, options.get("is_appointment", False))
    options["reminder_days"] = sorted(set(options.get("reminder_days") or []), reverse=True)
    model = MessageModel.objects.create(mailbox=mailbox, service=service, name=name, **options)
    version = ModelVersion.objects.create(model=model, number=1, subject=subject, body=body, created_by=user)
    _add_attachments(version, attachments)
    record(AuditEvent.Action.MODEL_SAVED, actor=user, obj=model, mailbox_id=mailbox.pk, detail={"version": 1})
    return model


@transaction.atomic
def save_version(
    model: MessageModel, *, subject: str, body: str, user=None, add_attachments=(), remove_attachments=()
) -> ModelVersion:
    """A new version when the text or the attachments change; the current one otherwise."""
    _check(subject, body, model.is_appointment)
    MessageModel.objects.select_for_update().filter(pk=model.pk).first()  # one new version at a time
    current = model.current
    removing = {int(pk) for pk in remove_attachments}
    kept = [a for a in current.attachments.all() if a.pk not in removing] if current else []
    unchanged = (
        current is not None
        and current.subject == subject
        and current.body == body
        and not add_attachments
        and len(kept) == current.attachments.count()
    )
    if unchanged:
        return current
    version = ModelVersion.objects.create(
        model=model, number=(current.number if current else 0) + 1, subject=subject, body=body, created_by=user
    )
    StandingAttachment.objects.bulk_create(
        [
            StandingAttachment(
                version=version,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                sha256=a.sha256,
                file=a.file,
            )
            for a in kept
        ]
    )
    _add_attachments(version, add_attachments)
    record(
        AuditEvent.Action.MODEL_SAVED,
        actor=user,
        obj=model,
        mailbox_id=model.mailbox_id,
        detail={"version": version.number},
    )
    return version


EDITABLE = frozenset({"service", "name", "kind", "is_appointment", "reminder_days", "defaults"})


def edit_model(
    model: MessageModel, *, subject: str, body: str, user=None, add_attachments=(), remove_attachments=(), **options
) -> ModelVersion:
    """Change a model's own fields (`EDITABLE`) and its text in one action: both are saved or
    neither (a refused text leaves the name, the service… as they were, in the database and
    in `model`). Returns the version now current."""
    unknown = set(options) - EDITABLE
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    if "reminder_days" in options:
        problem = reminder_days_error(options["reminder_days"])
        if problem:
            raise ValidationError(problem)
        options["reminder_days"] = sorted(set(options["reminder_days"]), reverse=True)
    with transaction.atomic():
        changed = MessageModel.objects.select_for_update().get(pk=model.pk)
        for name, value in options.items():
            setattr(changed, name, value)
        changed.save()
        version = save_version(
            changed,
            subject=subject,
            body=body,
            user=user,
            add_attachments=add_attachments,
            remove_attachments=remove_attachments,
        )
    for name in options:
        setattr(model, name, getattr(changed, name))
    return version


def _add_attachments(version: ModelVersion, attachments) -> None:
    """`attachments`: (filename, content type, bytes)."""
    rows = []
    for filename, content_type, data in attachments:
        digest, name = store_attachment(data)
        rows.append(
            StandingAttachment(
                version=version,
                filename=filename[:255],
                content_type=(content_type or "application/octet-stream")[:255],
                size=len(data),
                sha256=digest,
                file=name,
            )
        )
    StandingAttachment.objects.bulk_create(rows)
