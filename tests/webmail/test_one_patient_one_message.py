"""Issue 15 item 9 / issue 9 item 1: a professional's message to several patients leaves as one
message per patient; professionals in copy see the list; the composer says so. Driven through
the composer page and checked in what each patient can download (the .eml)."""

import pytest
from django.test import Client
from django.urls import reverse

from mailboxes.fanout import send_one_per_patient
from mailboxes.models import Entry, Folder, Message
from tests.factories import make_patient

pytestmark = pytest.mark.django_db


def _eml_of(patient_user, message) -> bytes:
    client = Client()
    client.force_login(patient_user)
    entry = Entry.objects.get(mailbox__patient__user=patient_user, message=message)
    response = client.get(reverse("mailboxes:message_eml", args=[entry.pk]))
    assert response.status_code == 200
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_composer_sends_one_message_per_patient_and_says_so(cast, client):
    client.force_login(cast.alice)
    page = client.get(reverse("webmail:compose")).content.decode()
    assert "un message par patient" in page
    paul, pauline = cast.paul_patient, cast.pauline_patient
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": f"{paul.ins}, {pauline.ins}",
            "cc": cast.charlie_box.address,
            "subject": "Résultats",
            "body": "Bonjour,\nvos résultats sont disponibles.",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "en 2 messages séparés, un par patient" in response.content.decode()

    copies = Message.objects.filter(subject="Résultats").order_by("pk")
    assert copies.count() == 3  # the professionals' copy, then one per patient
    pro_copy = Entry.objects.get(mailbox=cast.charlie_box).message
    listed = {r["address"] for r in pro_copy.to + pro_copy.cc}
    assert listed == {paul.address, pauline.address, cast.charlie_box.address}
    assert not Entry.objects.filter(message=pro_copy, mailbox__kind="PAT").exists()

    for me, other in ((paul, pauline), (pauline, paul)):
        entries = Entry.objects.filter(mailbox=me.mailbox, message__subject="Résultats")
        assert entries.count() == 1
        message = entries.get().message
        assert [r["address"] for r in message.to] == [me.address] and message.cc == []
        raw = _eml_of(me.user, message)
        assert other.ins.encode() not in raw and other.ins.lower().encode() not in raw
        assert me.ins.lower().encode() in raw
    # Every copy sits in the sender's Sent folder; the professional got exactly one.
    assert Entry.objects.filter(mailbox=cast.alice_box, folder__role=Folder.Role.SENT).count() == 3
    assert Entry.objects.filter(mailbox=cast.charlie_box, message__subject="Résultats").count() == 1


def test_one_patient_and_professionals_stay_one_message(cast):
    outcome = send_one_per_patient(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_patient.address, cast.charlie_box.address],
        source="webmail",
        subject="Avis",
        text="Texte",
    )
    assert not outcome.split and len(outcome.results) == 1
    assert Entry.objects.filter(message=outcome.primary.message).count() == 3  # Paul, Charlie, Sent


def test_a_refused_patient_does_not_stop_the_others(cast):
    closed = make_patient("Marc", "Ferrand", space_state="closed")
    outcome = send_one_per_patient(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_patient.address, closed.address],
        source="webmail",
        subject="Rappel",
        text="Texte",
    )
    assert outcome.split and len(outcome.results) == 1
    assert outcome.refused[closed.address].code == "space_closed"
    assert Entry.objects.filter(mailbox=cast.paul_box, message__subject="Rappel").count() == 1


def test_patients_only_each_get_their_own_and_no_professional_copy(cast):
    outcome = send_one_per_patient(
        cast.cardio,
        cast.bob,
        to=[cast.paul_patient.address, cast.pauline_patient.address],
        source="webmail",
        subject="Information",
        text="Texte",
    )
    assert outcome.patient_count == 2 and len(outcome.results) == 2
    for result in outcome.results:
        assert len(result.delivered) == 1 and result.delivered[0].kind == "PAT"
