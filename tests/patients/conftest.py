"""Helpers of the patient-space tests: sending through the one delivery path as the cast does."""

import datetime
from email import policy as email_policy
from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from mailboxes.models import Domain, Entry, Folder, Mailbox, Message, Structure
from tests.factories import ProfessionalFactory, StructureFactory, UserFactory, organisational_mailbox

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def _real_policy(settings):
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    settings.SITE_URL = "https://messagerie.exemple.fr"


def pro_send(box, user, to, *, subject="Préparation de votre examen", text="Bonjour,\nà jeun la veille.\n", **kw):
    from mailboxes.compose import send_from_mailbox

    return send_from_mailbox(box, user, to=to if isinstance(to, list) else [to], subject=subject, text=text, **kw)


def patient_send(patient, to, *, subject="Re: examen", text="Merci, bien reçu.", in_reply_to=None, attachments=()):
    from mailboxes.compose import send_from_mailbox

    return send_from_mailbox(
        patient.mailbox,
        patient.user,
        to=[to],
        subject=subject,
        text=text,
        in_reply_to=in_reply_to,
        attachments=attachments,
        source="patient",
    )


def raw_from(sender, to, *, subject="Compte rendu", body="Bonjour.\n", headers=None, from_name=""):
    message = EmailMessage(policy=email_policy.SMTP)
    message["From"] = f"{from_name} <{sender}>" if from_name else sender
    message["To"] = ", ".join(to if isinstance(to, list) else [to])
    message["Subject"] = subject
    message["Message-ID"] = f"<t{datetime.datetime.now().timestamp()}@{sender.split('@')[1]}>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def inbox_of(box):
    return Entry.objects.filter(mailbox=box, folder__role=Folder.Role.INBOX).select_related("message")


def system_messages_in(box):
    from patients.policy import system_address

    return Message.objects.filter(entries__mailbox=box, from_address=system_address())


@pytest.fixture
def pharmacy(cast):
    structure = StructureFactory(name="Pharmacie du Marché", kind=Structure.Kind.PHARMACY)
    domain = Domain.objects.create(name="pharmacie-du-marche.mssante.fr", structure=structure)
    pharmacist = ProfessionalFactory(
        user=UserFactory(username="pierre"), first_name="Pierre", last_name="Vidal", structure=structure
    )
    box = organisational_mailbox("officine", domain, responsible=pharmacist, members=[pharmacist.user])
    return SimpleNamespace(structure=structure, box=box, pharmacist=pharmacist)


@pytest.fixture
def applicative(cast):
    box = Mailbox(
        kind=Mailbox.Kind.APPLICATIVE,
        address="envois_automatiques_noreply@ch-troispics.mssante.fr",
        domain=cast.d_troispics,
        return_mailbox=cast.cardio,
        display_name="CH des Trois Pics — envois automatiques",
    )
    box.full_clean()
    box.save()
    return box
