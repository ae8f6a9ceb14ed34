"""The access-checked fetches of automation (STYLE.md §3): a professional reaches the models,
convocations and campaigns of the boxes they reach (`mailboxes.access`), a patient their own
convocations. "Not yours" and "does not exist" are the same 404."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from automation.models import Campaign, Convocation, MessageModel
from mailboxes.access import mailboxes_for_user
from mailboxes.models import Mailbox


def sending_boxes_for_user(user) -> QuerySet[Mailbox]:
    """The professional boxes this user may send automated messages from."""
    return mailboxes_for_user(user).exclude(kind=Mailbox.Kind.PATIENT)


def _get(queryset, pk, message):
    try:
        return queryset.get(pk=int(pk))
    except (queryset.model.DoesNotExist, TypeError, ValueError):
        raise Http404(message) from None


def models_for_user(user) -> QuerySet[MessageModel]:
    return MessageModel.objects.filter(mailbox__in=sending_boxes_for_user(user).values("pk")).select_related("mailbox")


def model_for_user(user, model_id) -> MessageModel:
    return _get(models_for_user(user), model_id, "Modèle introuvable")


def campaigns_for_user(user) -> QuerySet[Campaign]:
    return Campaign.objects.filter(mailbox__in=sending_boxes_for_user(user).values("pk")).select_related(
        "model", "mailbox", "version"
    )


def campaign_for_user(user, campaign_id) -> Campaign:
    return _get(campaigns_for_user(user), campaign_id, "Campagne introuvable")


def convocations_for_user(user) -> QuerySet[Convocation]:
    return Convocation.objects.filter(mailbox__in=sending_boxes_for_user(user).values("pk")).select_related(
        "model", "mailbox", "patient"
    )


def convocation_for_user(user, convocation_id) -> Convocation:
    return _get(convocations_for_user(user), convocation_id, "Convocation introuvable")


def convocations_for_patient_user(user) -> QuerySet[Convocation]:
    """The convocations of the patient signed in (none for anybody else)."""
    if not getattr(user, "is_authenticated", False):
        return Convocation.objects.none()
    return Convocation.objects.filter(patient__user=user).select_related("mailbox__structure", "patient")


def convocation_for_patient_user(user, convocation_id) -> Convocation:
    return _get(convocations_for_patient_user(user), convocation_id, "Rendez-vous introuvable")
