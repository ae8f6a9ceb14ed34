"""The MSS-C rules through an SMTP exchange with the inbound gateway (`runsmtpd`): the policy's
refusal is the SMTP refusal, and what it accepts follows the same rules as the webmail."""

import smtplib

import pytest

from mailboxes.models import Outbox, TrustedDomain
from patients import policy
from patients.models import Patient
from tests.factories import make_ins
from tests.patients.conftest import inbox_of, patient_send, raw_from
from tests.transport.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
EXTERNAL = f"dr.externe@{PEER}"


@pytest.fixture
def smtp(cast):
    from mailboxes.smtp_gateway import GatewayController

    TrustedDomain.objects.create(name=PEER)
    controller = GatewayController("127.0.0.1", free_port())
    controller.start()
    client = smtplib.SMTP(controller.hostname, controller.port, timeout=10)
    try:
        client.ehlo("mx.autre-operateur.mssante.fr")
        yield client
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            pass
        controller.stop()


def rcpt(client, sender, recipient):
    client.rset()
    code, text = client.mail(sender)
    assert code == 250, (code, text)
    return client.rcpt(recipient)


def test_external_pro_writes_to_a_patient_who_replies(cast, smtp):
    refused = smtp.sendmail(
        EXTERNAL, [cast.paul_patient.address], raw_from(EXTERNAL, cast.paul_patient.address, from_name="Dr Externe")
    )
    assert refused == {}
    entry = inbox_of(cast.paul_box).get()
    assert entry.message.from_name == "Dr Externe"
    result = patient_send(cast.paul_patient, EXTERNAL, in_reply_to=entry.message)
    assert result.queued == [EXTERNAL]


def returns_to_peer():
    return [o.message for o in Outbox.objects.filter(domain=PEER).select_related("message").order_by("id")]


def test_wrong_ins_is_answered_by_an_automatic_return(cast, smtp):
    """Issue 15 item 6: the same automatic return as a hosted sender gets, not a bare 550."""
    ins = cast.paul_patient.ins
    address = f"{ins[:13]}{(int(ins[13:]) + 1) % 97:02d}@patient.mssante.fr"
    assert smtp.sendmail(EXTERNAL, [address], raw_from(EXTERNAL, address)) == {}
    [ret] = returns_to_peer()
    assert ret.from_address == policy.system_address() and ret.envelope_from == ""
    assert "matricule INS de l'adresse est erroné" in ret.text_body


def test_unknown_and_closed_spaces_are_answered_by_automatic_returns(cast, smtp):
    unknown = f"{make_ins(sex='2', seq=555)}@patient.mssante.fr"
    assert smtp.sendmail(EXTERNAL, [unknown], raw_from(EXTERNAL, unknown)) == {}
    Patient.objects.filter(pk=cast.pauline_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    closed = cast.pauline_patient.address
    assert smtp.sendmail(EXTERNAL, [closed], raw_from(EXTERNAL, closed)) == {}
    first, second = returns_to_peer()
    assert "aucune messagerie Mon espace santé" in first.text_body
    assert "clôturé" in second.text_body
    assert not inbox_of(cast.pauline_box).exists()


def test_patient_to_patient_is_refused(cast, smtp):
    """Refused at MAIL FROM (the patient domain is hosted here, it never arrives from outside)
    or, failing that, at RCPT TO by the policy."""
    smtp.rset()
    code, _ = smtp.mail(cast.pauline_patient.address)
    if code == 250:
        code, _ = smtp.rcpt(cast.paul_patient.address)
    assert code == 550
    assert not inbox_of(cast.paul_box).exists()


def test_too_large_for_a_patient_is_refused(cast, smtp, settings):
    settings.PATIENT_MAX_MESSAGE_BYTES = 50_000
    raw = raw_from(EXTERNAL, [cast.paul_patient.address, cast.alice_box.address], body="x" * 60_000)
    refused = smtp.sendmail(EXTERNAL, [cast.paul_patient.address, cast.alice_box.address], raw)
    assert refused == {}  # accepted at RCPT (size unknown yet), delivered to the pro only
    assert not inbox_of(cast.paul_box).exists()
    assert inbox_of(cast.alice_box).count() == 1
    outbox = Outbox.objects.get(domain=PEER)
    assert outbox.message.from_address == policy.system_address()
    assert "25 Mo" in outbox.message.text_body


def test_fin_over_smtp_closes_the_exchange(cast, smtp):
    smtp.sendmail(EXTERNAL, [cast.paul_patient.address], raw_from(EXTERNAL, cast.paul_patient.address))
    smtp.sendmail(EXTERNAL, [cast.paul_patient.address], raw_from(EXTERNAL, cast.paul_patient.address, subject="[FIN]"))
    from mailboxes.delivery import DeliveryRefused

    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, EXTERNAL)
    assert refused.value.code == "conversation_closed"


def test_test_address_over_smtp(cast, smtp):
    raw = raw_from(EXTERNAL, policy.test_address(), subject="TEST de connexion", body="Message de TEST")
    assert smtp.sendmail(EXTERNAL, [policy.test_address()], raw) == {}
    outbox = Outbox.objects.get(domain=PEER)
    assert outbox.message.subject.startswith("Accusé de réception")
    assert outbox.message.auto_submitted


def test_another_operators_message_to_two_patients_gives_each_their_own_copy(cast, smtp):
    """RULES.md §3, as from the webmail and a desktop client: a message from another operator
    naming two patients (and a local pro in copy) reaches each patient addressed to them alone,
    whether it came in one transaction or one per recipient; the pro's copy is as written."""
    paul, pauline, alice = cast.paul_patient.address, cast.pauline_patient.address, cast.alice_box.address
    raw = raw_from(EXTERNAL, [paul, pauline, alice], subject="Compte rendu commun", from_name="Dr Externe")
    assert smtp.sendmail(EXTERNAL, [paul, pauline, alice], raw) == {}
    # A peer that sends one transaction per recipient: the headers still name both patients.
    raw = raw_from(EXTERNAL, [paul, pauline], subject="Un envoi par destinataire")
    assert smtp.sendmail(EXTERNAL, [paul], raw) == {}

    for me, other, subjects in (
        (cast.paul_patient, cast.pauline_patient, {"Compte rendu commun", "Un envoi par destinataire"}),
        (cast.pauline_patient, cast.paul_patient, {"Compte rendu commun"}),
    ):
        entries = list(inbox_of(me.mailbox))
        assert {e.message.subject for e in entries} == subjects
        for entry in entries:
            assert [r["address"] for r in entry.message.to] == [me.address] and entry.message.cc == []
            with entry.message.raw.open("rb") as fh:
                stored = fh.read()
            assert other.ins.encode() not in stored and b"Received: from" in stored
    pro_copy = inbox_of(cast.alice_box).get().message
    assert {r["address"] for r in pro_copy.to} == {paul, pauline, alice}
