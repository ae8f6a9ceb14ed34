"""Helpers of the automation tests: an admissions service with its organisational box and the
applicative box paired with it (RULES.md §2), Bob the secretary a member of both, and the
standard models installed on the applicative box."""

import datetime
from types import SimpleNamespace

import pytest
from django.utils import timezone

from automation.standard_models import install_standard_models
from mailboxes.models import Mailbox, Membership
from tests.factories import make_patient, organisational_mailbox


@pytest.fixture(autouse=True)
def _real_policy(settings):
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    settings.SITE_URL = "https://messagerie.exemple.fr"


@pytest.fixture
def service(cast):
    cast.troispics.address = "1 avenue des Pics\n38000 Grenoble"
    cast.troispics.phone = "04 76 00 00 00"
    cast.troispics.save()
    admissions = organisational_mailbox(
        "admissions",
        cast.d_troispics,
        responsible=cast.alice_pro,
        members=[cast.bob],
        display_name="Bureau des admissions — CH des Trois Pics",
    )
    app = Mailbox(
        kind=Mailbox.Kind.APPLICATIVE,
        address="envois_automatiques_noreply@ch-troispics.mssante.fr",
        domain=cast.d_troispics,
        structure=cast.troispics,
        return_mailbox=admissions,
        display_name="CH des Trois Pics (envois automatiques)",
        signature="Le bureau des admissions du CH des Trois Pics",
    )
    app.full_clean()
    app.save()
    Membership.objects.create(mailbox=app, user=cast.bob)
    models = {m.kind: m for m in install_standard_models(app, "Cardiologie", user=cast.bob)}
    return SimpleNamespace(admissions=admissions, app=app, models=models, cast=cast)


def in_days(days: int, hour: int = 10, minute: int = 0) -> datetime.datetime:
    local = timezone.localtime() + datetime.timedelta(days=days)
    return local.replace(hour=hour, minute=minute, second=0, microsecond=0)


def convocation_of_paul(service, starts_at: datetime.datetime):
    """Bob convokes Paul with the service's convocation model, place "Hall"."""
    from automation import convocations
    from automation.models import MessageModel

    return convocations.create_convocation(
        model=service.models[MessageModel.Kind.CONVOCATION],
        patient=service.cast.paul_patient,
        starts_at=starts_at,
        user=service.cast.bob,
        values={"lieu": "Hall"},
    )


def patients(count: int, prefix: str = "Patient") -> list:
    return [make_patient(f"{prefix}{i}", f"Nom{i}", sex="1" if i % 2 else "2") for i in range(count)]
