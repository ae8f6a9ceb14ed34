"""Issue 15 item 6 through a real SMTP socket: an outside professional writing to a closed space
or an unknown patient gets the same automatic return message as a hosted one (RULES.md §3, one
behaviour for one rule), relayed back to its operator with the null envelope sender (RFC 3834).
"""

from email import message_from_bytes
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import DeliveryRefused
from mailboxes.models import Entry, Message, TrustedDomain
from patients.models import Patient, PendingReturn
from patients.policy import system_address
from tests.factories import make_ins

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
PEER_SENDER = f"dr.externe@{PEER}"


@pytest.fixture
def outside(cast, settings, sink):
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    settings.TRUST_ALL_MSSANTE = False
    TrustedDomain.objects.create(name=PEER)
    return sink


def raw_to(address: str, auto_submitted: str = "") -> bytes:
    message = EmailMessage()
    message["From"] = f"Dr Externe <{PEER_SENDER}>"
    if auto_submitted:
        message["Auto-Submitted"] = auto_submitted
    message["To"] = address
    message["Subject"] = "SENTINELLE-OBJET bilan"
    message["Message-ID"] = make_msgid(domain=PEER)
    message.set_content("SENTINELLE-CORPS résultats.\n")
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send_from_outside(gateway, address: str, auto_submitted: str = ""):
    import smtplib

    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as client:
        client.ehlo("mx.autre-operateur.mssante.fr")
        assert client.mail(PEER_SENDER)[0] == 250
        assert client.rcpt(address)[0] == 250  # no bare 550 at RCPT: the policy answers
        return client.data(raw_to(address, auto_submitted))


def text_of(raw: bytes) -> str:
    return message_from_bytes(raw).get_payload(decode=True).decode("utf-8").replace("\r\n", "\n")


def hosted_return_text(cast, address: str) -> str:
    with pytest.raises(DeliveryRefused):
        send_from_mailbox(cast.alice_box, cast.alice, to=[address], subject="Bilan", text="t")
    ret = Message.objects.filter(entries__mailbox=cast.alice_box, from_address=system_address()).latest("id")
    # Hosted or not, the return leaves with the null envelope sender.
    assert ret.envelope_from == ""
    with ret.raw.open("rb") as fh:
        return text_of(fh.read())


def paragraph(text: str, start: str) -> str:
    return next(p for p in text.split("\n\n") if p.startswith(start))


@pytest.mark.parametrize("case", ["closed", "unknown"])
def test_outside_professional_gets_the_same_return_as_a_hosted_one(cast, outside, start_gateway, settings, case):
    if case == "closed":
        Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
        address = cast.paul_patient.address
    else:
        address = f"{make_ins(seq=987654)}@{settings.PATIENT_DOMAIN}"
    gateway = start_gateway()
    code, reply = send_from_outside(gateway, address)
    assert code == 250 and b"retour automatique" in reply
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()
    [got] = outside.handler.received
    assert got.mail_from == "<>" and got.rcpt_tos == [PEER_SENDER]
    returned = message_from_bytes(got.raw)
    assert returned["Auto-Submitted"] == "auto-replied" and system_address() in returned["From"]
    outside_text = text_of(got.raw)
    assert b"SENTINELLE" not in got.raw
    hosted_text = hosted_return_text(cast, address)
    # The same message: same account of what happened and what to do, accents kept.
    for start in ("Ce qui s'est passé", "Que faire"):
        assert paragraph(outside_text, start) == paragraph(hosted_text, start)
    assert "é" in outside_text


@pytest.mark.parametrize("case", ["closed", "unknown", "wrong_ins"])
def test_an_automatic_message_is_refused_without_the_promise_of_a_return(cast, outside, start_gateway, settings, case):
    """RFC 3834: nothing automatic answers a message marked Auto-Submitted, so no return is sent;
    the reply says so (a refusal with the policy's reason, then that no return is sent) instead
    of a 250 announcing a return that never comes."""
    if case == "closed":
        Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
        address = cast.paul_patient.address
    elif case == "unknown":
        address = f"{make_ins(seq=987654)}@{settings.PATIENT_DOMAIN}"
    else:
        ins = make_ins(seq=987654)
        address = f"{ins[:-2]}{(int(ins[-2:]) + 1) % 97:02d}@{settings.PATIENT_DOMAIN}"
    gateway = start_gateway()
    code, reply = send_from_outside(gateway, address, auto_submitted="auto-replied")
    assert code == 550, reply
    assert b"retour automatique est envoye" not in reply
    assert reply.endswith(
        b"Aucun retour automatique n'est envoye : le message refuse est lui-meme un message automatique."
    )
    reason = {"closed": b"a cloture son espace", "unknown": b"Aucune messagerie", "wrong_ins": b"INS est errone"}[case]
    assert reason in reply
    assert not PendingReturn.objects.exists()
    assert outside.handler.received == []
    assert not Message.objects.filter(from_address=system_address()).exists()
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()
    # `Auto-Submitted: no` is a message written by a person: its return is sent, and announced.
    code, reply = send_from_outside(gateway, address, auto_submitted="no")
    assert code == 250 and reply.endswith(b"un retour automatique est envoye a l'expediteur")
    assert PendingReturn.objects.count() == 1 and len(outside.handler.received) == 1
