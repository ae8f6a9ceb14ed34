"""Patient A never reaches patient B's messages or attachments: by id, by URL, by download link
(STYLE.md §3: "not yours" and "does not exist" are the same 404)."""

import pytest

from tests.patients.conftest import PDF, inbox_of, pro_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def pauls_message(cast):
    sent = pro_send(
        cast.alice_box,
        cast.alice,
        cast.paul_patient.address,
        subject="Résultats de Paul",
        attachments=[("paul.pdf", "application/pdf", PDF)],
    ).message
    return inbox_of(cast.paul_box).get(message=sent)


def test_other_patient_gets_404_everywhere(cast, client, pauls_message):
    attachment = pauls_message.message.attachments.get()
    client.force_login(cast.pauline)
    urls = [
        f"/patient/message/{pauls_message.pk}/",
        f"/patient/echange/{pauls_message.pk}/",
        f"/patient/message/{pauls_message.pk}/repondre",
        f"/patient/piece-jointe/{attachment.pk}/enregistrer",
        f"/operateur/piece-jointe/{attachment.pk}",
        f"/operateur/piece-jointe/{attachment.pk}?inline=1",
        f"/operateur/message/{pauls_message.pk}/eml",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/patient/message/{pauls_message.pk}/repondre", {"text": "x"}).status_code == 404
    assert client.post(f"/patient/piece-jointe/{attachment.pk}/enregistrer", {"title": "x"}).status_code == 404
    inbox = client.get("/patient/").content.decode()
    assert "Résultats de Paul" not in inbox and "Dr Alice MARTIN" not in inbox
    # A missing id answers exactly the same.
    assert client.get("/patient/message/999999/").status_code == 404


def test_patient_cannot_block_a_box_through_another_patients_conversation(cast, client, pauls_message):
    client.force_login(cast.pauline)
    assert client.post(f"/patient/parametres/bloquer/{cast.alice_box.pk}").status_code == 404


def test_owner_reaches_their_own_message(cast, client, pauls_message):
    attachment = pauls_message.message.attachments.get()
    client.force_login(cast.paul)
    assert client.get(f"/patient/message/{pauls_message.pk}/").status_code == 200
    assert client.get(f"/operateur/piece-jointe/{attachment.pk}").status_code == 200


def test_anonymous_is_sent_to_login(cast, client, pauls_message):
    response = client.get(f"/patient/message/{pauls_message.pk}/")
    assert response.status_code == 302 and "/comptes/login/" in response["Location"]
