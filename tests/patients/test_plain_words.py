"""What an elderly patient reads, in plain French: the inactivity warning promises no draft (a
patient has none), and the record names the INS in words they know."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_inactivity_warning_does_not_promise_a_patient_a_draft(cast, client, settings):
    settings.SESSION_INACTIVITY_TIMEOUT_PATIENT = 15 * 60
    client.force_login(cast.paul)
    page = client.get("/patient/").content.decode()
    assert "Votre session va bientôt prendre fin" in page
    assert "Un message en cours d'écriture n'est pas gardé : envoyez-le ou restez connecté." in page
    assert "brouillons" not in page


def test_the_profile_names_the_ins_in_plain_words(cast, client):
    client.force_login(cast.paul)
    page = client.get("/dossier/").content.decode()
    assert "Matricule de santé (INS)" in page and "votre numéro de sécurité sociale" in page
    assert "<dt>INS</dt>" not in page
