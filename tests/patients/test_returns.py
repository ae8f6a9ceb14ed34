"""Automatic returns (RULES.md §3): messages back in the sender's box through the same path,
in French, with no health content, never answering an automatic message; the MDN; the test
address."""

from email import message_from_bytes

import pytest

from mailboxes.delivery import DeliveryRefused, send_message
from mailboxes.models import Delivery, Message
from patients import policy
from patients.models import Patient
from tests.factories import make_ins
from tests.patients.conftest import PDF, inbox_of, pro_send, raw_from, system_messages_in

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_SUBJECT = "SENTINELLE-OBJET chimiothérapie"
SECRET_BODY = "SENTINELLE-CORPS résultats anormaux"


def only_return(box) -> Message:
    returns = list(system_messages_in(box))
    assert len(returns) == 1, returns
    return returns[0]


def assert_clean_return(message: Message, *must_say: str):
    raw = message.raw.open("rb").read()
    parsed = message_from_bytes(raw)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert message.auto_submitted
    for secret in ("SENTINELLE", "chimio", "anormaux"):
        assert secret not in message.subject
        assert secret not in message.text_body
        assert secret.encode() not in raw
    assert "Que faire" in message.text_body
    for text in must_say:
        assert text in message.text_body


def send_secret(cast, to, **kw):
    return pro_send(cast.alice_box, cast.alice, to, subject=SECRET_SUBJECT, text=SECRET_BODY, **kw)


def test_closed_space_return(cast):
    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    with pytest.raises(DeliveryRefused):
        send_secret(cast, cast.paul_patient.address)
    message = only_return(cast.alice_box)
    assert_clean_return(message, "clôturé son espace", cast.paul_patient.address)


@pytest.mark.parametrize("state", [Patient.SpaceState.NOT_CREATED, Patient.SpaceState.OPPOSED])
def test_no_space_return(cast, state):
    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=state)
    with pytest.raises(DeliveryRefused):
        send_secret(cast, cast.paul_patient.address)
    assert_clean_return(only_return(cast.alice_box), "aucune messagerie Mon espace santé", "INS")


def test_unknown_patient_return(cast):
    with pytest.raises(DeliveryRefused):
        send_secret(cast, f"{make_ins(sex='2', seq=4242)}@patient.mssante.fr")
    assert_clean_return(only_return(cast.alice_box), "aucune messagerie Mon espace santé")


def test_wrong_ins_return(cast):
    ins = cast.paul_patient.ins
    wrong = ins[:13] + f"{(int(ins[13:]) + 1) % 97:02d}"
    with pytest.raises(DeliveryRefused) as refused:
        send_secret(cast, f"{wrong}@patient.mssante.fr")
    assert refused.value.code == "wrong_ins"
    assert_clean_return(only_return(cast.alice_box), "matricule INS", "clé")


def test_too_large_return(cast, settings):
    settings.PATIENT_MAX_MESSAGE_BYTES = 60_000
    big = PDF + b"0" * 80_000
    result = send_secret(
        cast, [cast.paul_patient.address, cast.charlie_box.address], attachments=[("cr.pdf", "application/pdf", big)]
    )
    assert result.delivered == [cast.charlie_box]
    assert result.refused[cast.paul_patient.address].code == "too_large"
    delivery = Delivery.objects.get(message=result.message, address=cast.paul_patient.address)
    assert (delivery.status, delivery.reason) == (Delivery.Status.RETURNED, "too_large")
    assert_clean_return(only_return(cast.alice_box), "25 Mo")


def test_return_sent_once_even_if_the_task_runs_twice(cast):
    from patients import returns

    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    with pytest.raises(DeliveryRefused):
        send_secret(cast, cast.paul_patient.address)
    original = only_return(cast.alice_box)
    assert not returns.send_return(
        "space_closed",
        cast.alice_box.address,
        cast.paul_patient.address,
        original.in_reply_to,
        "2026-11-22T08:00:00+01:00",
    )
    assert system_messages_in(cast.alice_box).count() == 1


def test_no_return_to_an_automatic_message(cast):
    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    with pytest.raises(DeliveryRefused):
        send_secret(cast, cast.paul_patient.address, extra_headers={"Auto-Submitted": "auto-generated"})
    assert not system_messages_in(cast.alice_box).exists()


def test_returns_reach_external_senders_through_the_relay_queue(cast):
    from mailboxes.models import Outbox, TrustedDomain

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    external = "dr.externe@autre-operateur.mssante.fr"
    with pytest.raises(DeliveryRefused):
        send_message(
            raw_from(external, f"{make_ins(seq=77)}@patient.mssante.fr", subject=SECRET_SUBJECT),
            envelope_from=external,
            envelope_to=[f"{make_ins(seq=77)}@patient.mssante.fr"],
            source="smtp",
        )
    outbox = Outbox.objects.get(domain="autre-operateur.mssante.fr")
    assert outbox.message.from_address == policy.system_address()
    assert "SENTINELLE" not in outbox.message.subject


# --- MDN ----------------------------------------------------------------------------------------


def test_mdn_sent_once_when_the_patient_opens_the_message(cast, client):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, request_mdn=True).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    client.force_login(cast.paul)
    assert client.get(f"/patient/message/{entry.pk}/").status_code == 200
    assert client.get(f"/patient/message/{entry.pk}/").status_code == 200
    mdns = Message.objects.filter(entries__mailbox=cast.alice_box, is_report=True)
    assert mdns.count() == 1
    assert Delivery.objects.get(message=sent, address=cast.paul_patient.address).status == Delivery.Status.READ


def test_no_mdn_when_none_was_asked(cast, client):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    client.force_login(cast.paul)
    client.get(f"/patient/message/{entry.pk}/")
    assert not Message.objects.filter(entries__mailbox=cast.alice_box, is_report=True).exists()
    assert Delivery.objects.get(message=sent, address=cast.paul_patient.address).status == Delivery.Status.DELIVERED


# --- The test address ------------------------------------------------------------------------------


def test_test_address_acknowledges_subject_and_body_with_test(cast):
    pro_send(cast.cardio, cast.bob, policy.test_address(), subject="TEST messagerie", text="Ceci est un TEST.")
    ack = only_return(cast.cardio)
    assert ack.subject.startswith("Accusé de réception")
    assert ack.auto_submitted


@pytest.mark.parametrize(
    "subject,text", [("Essai", "Ceci est un TEST."), ("TEST messagerie", "Ceci est un essai."), ("test", "test")]
)
def test_test_address_ignores_messages_without_test_in_both(cast, subject, text):
    pro_send(cast.cardio, cast.bob, policy.test_address(), subject=subject, text=text)
    assert not system_messages_in(cast.cardio).exists()


def test_no_acknowledgement_of_an_automatic_message(cast):
    pro_send(
        cast.cardio,
        cast.bob,
        policy.test_address(),
        subject="TEST",
        text="TEST",
        extra_headers={"Auto-Submitted": "auto-generated"},
    )
    assert not system_messages_in(cast.cardio).exists()
