"""Fixes from a review of the patient side against RULES.md §3 and the brief: confirmation
before blocking, the professional's close action confirmed on the server, compose errors that
say what to do."""

import pytest

from audit.models import AuditEvent
from patients.models import Block, Conversation
from tests.patients.conftest import pro_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def paul(cast, client):
    client.force_login(cast.paul)
    return client


def test_blocking_from_settings_asks_for_confirmation_first(cast, paul):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    settings_page = paul.get("/patient/parametres").content.decode()
    url = f"/patient/parametres/bloquer/{cast.alice_box.pk}"
    # The settings page links to a confirmation page instead of blocking in one tap.
    assert f'href="{url}"' in settings_page
    confirm = paul.get(url)
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Oui, bloquer Dr Alice MARTIN" in page and "Non, revenir aux paramètres" in page
    assert cast.alice_box.address not in page  # a name, never the raw address
    assert not Block.objects.exists()
    # A POST without the confirmation only shows the question again.
    assert paul.post(url).status_code == 200
    assert not Block.objects.exists()
    response = paul.post(url, {"confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/patient/parametres"
    assert Block.objects.filter(patient=cast.paul_patient, mailbox=cast.alice_box).exists()
    assert AuditEvent.objects.filter(action="patient.blocked", actor=cast.paul).count() == 1


def test_block_confirmation_page_is_not_reachable_for_a_box_that_never_wrote(cast, paul):
    assert paul.get(f"/patient/parametres/bloquer/{cast.charlie_box.pk}").status_code == 404


def test_conversation_block_form_carries_its_confirmation(cast, paul):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    entry = cast.paul_patient.mailbox.entries.get()
    html = paul.get(f"/patient/echange/{entry.pk}/").content.decode()
    assert 'name="confirm" value="on"' in html


def test_pro_close_without_confirmation_does_not_close(cast, client):
    pro_send(cast.cardio, cast.bob, cast.paul_patient.address)
    url = f"/patient/pro/echange/{cast.cardio.pk}/{cast.paul_patient.pk}/cloturer"
    client.force_login(cast.bob)
    response = client.post(url, {"next": "/pro/"})
    assert response.status_code == 200 and "[FIN]" in response.content.decode()
    assert Conversation.objects.get(mailbox=cast.cardio, patient=cast.paul_patient).state == "open"


def test_compose_errors_say_what_to_do_and_keep_the_text(cast, paul):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    response = paul.post("/patient/ecrire", {"to": "", "subject": "", "text": "Mon texte à garder"})
    page = response.content.decode()
    assert "Choisissez à qui envoyer votre message" in page
    assert "Indiquez en quelques mots l&#x27;objet de votre message" in page
    assert "Mon texte à garder" in page


def test_compose_with_nobody_to_write_to_explains_instead_of_a_404(cast, paul):
    response = paul.get("/patient/ecrire", follow=True)
    assert response.status_code == 200
    assert "dès qu&#x27;il vous aura écrit" in response.content.decode()


def test_reply_after_closing_the_space_explains_instead_of_a_404(cast, paul):
    from patients.models import Patient

    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    entry = cast.paul_patient.mailbox.entries.get()
    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    response = paul.post(f"/patient/message/{entry.pk}/repondre", {"text": "Bonjour"}, follow=True)
    # Explained on the composer itself, with what was written still there (nothing lost).
    assert response.status_code == 400
    assert "Votre messagerie est clôturée : vous ne pouvez plus envoyer de message." in response.content.decode()
    assert "Bonjour</textarea>" in response.content.decode()
    assert cast.paul_patient.mailbox.entries.count() == 1  # nothing sent
