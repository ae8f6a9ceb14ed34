"""Patient messaging with another operator, through a real Postfix as that operator's MTA.

A professional of `autre-operateur.mssante.fr` writes with smtplib into that operator's Postfix;
Postfix relays mail for our domains (the hosted one and the patient domain) to our SMTP gateway
and delivers its own domain's mail into a Maildir per box. Our relay sends everything for the
peer to that Postfix. What the tests assert on is what an outsider sees: the remote
professional's Maildir (what Postfix finally delivered, with its `Return-Path:`), and the
patient's pages (Django's test client logged in as the patient).

Flows (RULES.md §3 and §7): automatic returns (closed space, unknown and malformed INS), a
blocked professional, the patient's reply, the read receipt, the test address, closing with
`[FIN]` and reopening, and nothing automatic answering an automatic message or the null sender.
"""

import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

import pytest
from django.urls import reverse

from mailboxes.models import Entry, Message, Outbox, TrustedDomain
from patients.models import Patient, PendingReturn
from patients import policy as patient_policy
from tests.factories import make_ins
from tests.transport.conftest import wait_until
from tests.transport.postfix import mailbox, maillog, postfix_available, queue_is_empty, start_postfix, stop_postfix

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PRO_LOCAL = "dr.externe"
PRO = f"{PRO_LOCAL}@{PEER}"


@pytest.fixture
def peer(cast, settings, start_gateway):
    assert postfix_available(), "Postfix (Debian package) and root are needed for this test"
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    settings.TRUST_ALL_MSSANTE = False
    settings.RELAY_RETRY_BASE_SECONDS = 0
    TrustedDomain.objects.create(name=PEER)
    gateway = start_gateway()
    postfix = start_postfix(
        domain=PEER,
        our_domain=cast.d_troispics.name,
        also_ours=(settings.PATIENT_DOMAIN,),
        gateway_port=gateway.port,
        maildirs=(PRO_LOCAL,),
    )
    settings.RELAY_HOST, settings.RELAY_PORT, settings.RELAY_USE_TLS = "127.0.0.1", postfix.port, False
    try:
        yield postfix
    finally:
        stop_postfix(postfix)


def write(
    peer, to: str, subject: str, text: str, *, sender: str = PRO, headers: dict | None = None, **extra
) -> EmailMessage:
    """The remote professional's mail client submits to its operator's Postfix."""
    mail = EmailMessage()
    mail["From"] = f"Dr Jeanne Externe <{PRO}>"
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain=PEER)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(text)
    with smtplib.SMTP("127.0.0.1", peer.port, timeout=10) as client:
        client.sendmail(sender, [to], mail.as_bytes())
    return mail


def received(peer, count: int = 1) -> list:
    """The remote professional's box once it holds `count` messages, parsed."""
    raws = wait_until(lambda: len(mailbox(peer, PRO_LOCAL)) >= count and mailbox(peer, PRO_LOCAL), timeout=30)
    return [message_from_bytes(raw, policy=policy.default) for raw in raws]


def patient_entries(patient: Patient):
    return Entry.objects.filter(mailbox=patient.mailbox)


def delivered_to_patient(patient: Patient, count: int = 1) -> list[Entry]:
    return wait_until(
        lambda: patient_entries(patient).filter(folder__role="inbox").count() >= count
        and list(patient_entries(patient).filter(folder__role="inbox").order_by("id")),
        timeout=30,
    )


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def assert_automatic_answer_to(mail, original: EmailMessage) -> None:
    assert mail["Return-Path"] == "<>"  # Postfix's final delivery: the null envelope sender
    assert mail["Auto-Submitted"] == "auto-replied"
    assert parseaddr(mail["From"])[1] == patient_policy.system_address()
    assert mail["In-Reply-To"].strip() == original["Message-ID"]
    assert original["Message-ID"] in mail["References"]
    assert mail["Message-ID"]


@pytest.mark.parametrize("case", ["closed", "unknown", "malformed"])
def test_a_refused_patient_address_sends_the_automatic_return_back_through_postfix(cast, peer, settings, case):
    if case == "closed":
        Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
        address, code = cast.paul_patient.address, "space_closed"
    elif case == "unknown":
        address, code = f"{make_ins(seq=987654)}@{settings.PATIENT_DOMAIN}", "patient_not_found"
    else:
        ins = make_ins(seq=987654)
        address, code = f"{ins[:-2]}{(int(ins[-2:]) + 1) % 97:02d}@{settings.PATIENT_DOMAIN}", "wrong_ins"
    refusal = patient_policy.REFUSALS[code]
    original = write(peer, address, "SENTINELLE-OBJET bilan", "SENTINELLE-CORPS résultats.")
    [ret] = received(peer)
    assert_automatic_answer_to(ret, original)
    assert ret["Subject"] == "Message non distribué : retour automatique de Mon espace santé"
    text = text_of(ret)
    # The policy's own French text for that refusal: what happened and what to do.
    assert f"Ce qui s'est passé : {refusal.happened}" in text and f"Que faire : {refusal.to_do}" in text
    assert address in text
    assert "SENTINELLE" not in ret.as_string()
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()
    # Postfix got our 250 (no bounce of its own on top of our return).
    assert "status=sent" in maillog(peer) and "status=bounced" not in maillog(peer)
