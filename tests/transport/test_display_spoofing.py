"""Issue 15 item 3 through the real path (SMTP socket → gateway → store → pages): a display
name that looks like an address never hides the real address, in the webmail list, the reading
pane and the patient's inbox and message; bidirectional controls never reach a page."""

import smtplib
from email.utils import make_msgid

import pytest
from django.test import Client
from django.urls import reverse

from mailboxes.models import Entry, Folder, TrustedDomain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
ATTACKER = f"attaquant@{PEER}"
RLO, PDI = "\u202e", "\u2069"


def raw(from_header: str, to: str) -> bytes:
    return (
        f"From: {from_header}\r\nTo: <{to}>\r\nSubject: Facture {RLO}fdp.exe{PDI} urgente\r\n"
        f"Message-ID: {make_msgid(domain=PEER)}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
        "Bonjour.\r\n--b\r\nContent-Type: application/pdf\r\n"
        f'Content-Disposition: attachment; filename="facture{RLO}fdp.pdf"\r\n\r\n%PDF-1.4\r\n--b--\r\n'
    ).encode()


@pytest.fixture
def delivered(cast, settings, start_gateway):
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    TrustedDomain.objects.create(name=PEER)
    gateway = start_gateway()
    chef = f"chef@{cast.d_troispics.name}"

    def deliver(from_header: str):
        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
            client.ehlo("mx.autre-operateur.mssante.fr")
            for to in (cast.alice_box.address, cast.paul_patient.address):
                assert client.sendmail(ATTACKER, [to], raw(from_header, to)) == {}

    return chef, deliver


def pages(cast) -> dict[str, str]:
    pro, patient = Client(), Client()
    pro.force_login(cast.alice)
    patient.force_login(cast.paul)
    entry = Entry.objects.filter(mailbox=cast.alice_box, folder__role=Folder.Role.INBOX).latest("id")
    patient_entry = Entry.objects.filter(mailbox=cast.paul_box).latest("id")
    inbox = Folder.objects.get(mailbox=cast.alice_box, role=Folder.Role.INBOX)
    return {
        "list": pro.get(reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])).content.decode(),
        "reading": pro.get(reverse("webmail:message", args=[entry.pk])).content.decode(),
        "patient_inbox": patient.get(reverse("patients:inbox")).content.decode(),
        "patient_message": patient.get(reverse("patients:message", args=[patient_entry.pk])).content.decode(),
    }


@pytest.mark.parametrize(
    "shape",
    ['"{chef}" <{attacker}>', "{attacker}(<{chef}>"],
    ids=["quoted-name", "comment"],
)
def test_an_address_like_display_name_never_hides_the_real_address(cast, delivered, shape):
    chef, deliver = delivered
    deliver(shape.format(chef=chef, attacker=ATTACKER))
    shown = pages(cast)
    for name, html in shown.items():
        assert chef not in html, name
        assert RLO not in html and PDI not in html, name
    assert ATTACKER in shown["list"] and ATTACKER in shown["reading"]
    # The patient sees the start of the real address (RULES.md §3 display names).
    assert "attaquant" in shown["patient_inbox"] and "attaquant" in shown["patient_message"]
    assert "Facture fdp.exe urgente" in shown["list"]
    assert "facturefdp.pdf" in shown["patient_message"]
