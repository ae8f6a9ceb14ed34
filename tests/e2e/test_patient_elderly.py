"""An elderly patient on a phone (375x812, 320x640), in Chromium (RULES.md §3): what they see
when a reply is refused (a file of the wrong kind or too big, an empty text, an exchange closed
while they wrote), a wrong notification address, a blocked correspondent: nothing they wrote is
lost, errors are read out (role=alert, focused) and tied to their field (aria-describedby)."""

import datetime
import re

import pytest

from health_record.models import Measure
from mailboxes.compose import send_from_mailbox
from mailboxes.models import Entry, Folder, Message
from patients.conversation import close_conversation
from patients.models import Block
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
DOCX = b"PK\x03\x04\x14\x00\x06\x00 not a pdf"


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # axe is injected as an inline script, which the product's strict CSP rightly refuses.
    return {**browser_context_args, "bypass_csp": True}


def results_from_alice(cast):
    """Dr Martin sends Paul his results with a PDF; the entry in Paul's inbox."""
    sent = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_patient.address],
        subject="Résultats de votre bilan sanguin",
        text="Bonjour,\nvoici vos résultats.\n",
        attachments=[("resultats-bilan.pdf", "application/pdf", PDF)],
    ).message
    return Entry.objects.get(mailbox=cast.paul_box, folder__role=Folder.Role.INBOX, message=sent)


def replies_from_paul(cast):
    return Message.objects.filter(sender_mailbox=cast.paul_box)


def focused_id(page) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def described_by(page, selector) -> str:
    """The text a screen reader reads after the field's name: its aria-describedby targets."""
    return page.evaluate(
        """(selector) => (document.querySelector(selector).getAttribute('aria-describedby') || '')
            .split(' ').filter(Boolean).map(id => document.getElementById(id).innerText).join(' | ')""",
        selector,
    )


def test_a_refused_file_is_read_out_tied_to_the_field_and_the_reply_is_kept(cast, login, live_server, settings):
    settings.ATTACHMENT_MAX_BYTES = 2000
    entry = results_from_alice(cast)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 375, "height": 812})
    reply_url = f"{live_server.url}/patient/message/{entry.pk}/repondre"

    # A Word file: refused, said at the top (focused, role=alert) and under the files field.
    page.goto(reply_url)
    page.fill("textarea[name=text]", "Voici mon compte rendu et mon profil.")
    page.check("input[name=include_profile]")
    page.set_input_files(
        "input[type=file]", files=[{"name": "notes.docx", "mimeType": "application/msword", "buffer": DOCX}]
    )
    page.get_by_test_id("send-button").click()
    error = page.get_by_test_id("compose-error")
    error.wait_for()
    assert error.get_attribute("role") == "alert" and focused_id(page) == "compose-error"
    assert page.title().startswith("Erreur · Répondre")  # the first thing a screen reader says
    assert "« notes.docx » n'est pas d'un format accepté" in error.inner_text()
    assert "choisissez-les à nouveau" in error.inner_text()
    assert "n'est pas d'un format accepté" in described_by(page, "input[type=file]")
    assert page.get_attribute("input[type=file]", "aria-invalid") == "true"
    # Nothing lost: the text and the profile box are as he left them.
    assert page.input_value("textarea[name=text]") == "Voici mon compte rendu et mon profil."
    assert page.is_checked("input[name=include_profile]")
    assert serious_violations(page) == []

    # Too big: the page warns as soon as the file is chosen, with the real limit.
    page.set_input_files(
        "input[type=file]", files=[{"name": "scanner.pdf", "mimeType": "application/pdf", "buffer": PDF + b"0" * 4000}]
    )
    summary = page.locator("[data-role=file-summary]").inner_text()
    assert "Trop volumineux (2,0\xa0Ko au plus par fichier)" in summary and "scanner.pdf" in summary
    page.get_by_test_id("send-button").click()
    page.get_by_test_id("compose-error").wait_for()
    assert "« scanner.pdf » pèse" in page.get_by_test_id("compose-error").inner_text()
    assert page.input_value("textarea[name=text]") == "Voici mon compte rendu et mon profil."

    # An empty text: the problem is read out and tied to the text field.
    page.fill("textarea[name=text]", "")
    page.get_by_test_id("send-button").click()
    page.get_by_test_id("compose-error").wait_for()
    assert focused_id(page) == "compose-error"
    assert "Écrivez votre message avant de l'envoyer." in page.get_by_test_id("compose-error").inner_text()
    assert "Écrivez votre message" in described_by(page, "textarea[name=text]")
    assert not replies_from_paul(cast).exists()

    # Then he sends it right: a PDF from his phone and his medical profile.
    page.fill("textarea[name=text]", "Voici mon compte rendu et mon profil.")
    page.set_input_files("input[type=file]", files=[{"name": "cr.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    page.check("input[name=include_profile]")
    settings.ATTACHMENT_MAX_BYTES = 10 * 1024**2
    page.get_by_test_id("send-button").click()
    page.wait_for_url("**/patient/echange/**")
    assert "Votre message a été envoyé." in page.locator(".flash").inner_text()
    [reply] = replies_from_paul(cast)
    names = sorted(a.filename for a in reply.attachments.all())
    assert names[0] == "cr.pdf" and len(names) == 2 and names[1].endswith(".pdf")


def test_a_reply_written_while_the_exchange_is_closed_is_not_lost(cast, login, live_server):
    entry = results_from_alice(cast)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"{live_server.url}/patient/message/{entry.pk}/repondre")
    written = "Bonjour Docteur,\nj'ai bien reçu mes résultats, mais j'ai une question sur le cholestérol."
    page.fill("textarea[name=text]", written)
    # Meanwhile, Dr Martin closes the exchange.
    close_conversation(cast.alice_box, cast.paul_patient, cast.alice)
    page.get_by_test_id("send-button").click()

    error = page.get_by_test_id("compose-error")
    error.wait_for()
    assert focused_id(page) == "compose-error"
    assert "Votre message n'a pas été envoyé : votre texte est ci-dessous" in error.inner_text()
    assert "Dr Alice MARTIN a clôturé cet échange" in page.get_by_test_id("closed-banner").inner_text()
    assert page.input_value("textarea[name=text]") == written  # his text is still there to copy
    assert page.get_by_test_id("send-button").count() == 0
    assert page.get_by_role("link", name="Revenir à mes messages").is_visible()
    assert not replies_from_paul(cast).exists()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert serious_violations(page) == []


def test_notification_address_errors_are_read_out_and_an_empty_one_stops_them(cast, login, live_server):
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/patient/parametres")
    # The help is really read with the field (its id exists).
    assert "Laissez la case vide pour ne plus être prévenu" in described_by(page, "input[name=notification_email]")
    page.fill("input[name=notification_email]", "paul.perso@")
    page.get_by_role("button", name="Enregistrer").click()
    error = page.locator("#settings-error")
    error.wait_for()
    assert error.get_attribute("role") == "alert" and focused_id(page) == "settings-error"
    assert "incomplète ou mal écrite" in error.inner_text() and "Rien n'a été changé" in error.inner_text()
    assert page.title().startswith("Erreur · Paramètres")
    assert "incomplète ou mal écrite" in described_by(page, "input[name=notification_email]")
    assert serious_violations(page) == []
    cast.paul_patient.refresh_from_db()
    assert cast.paul_patient.notification_email == "paul.perso@exemple.org"

    page.fill("input[name=notification_email]", "")
    page.get_by_role("button", name="Enregistrer").click()
    page.locator(".flash").wait_for()
    assert "Vous ne serez plus prévenu par e-mail de vos nouveaux messages." in page.locator(".flash").inner_text()
    cast.paul_patient.refresh_from_db()
    assert cast.paul_patient.notification_email == ""


def test_a_blocked_correspondent_reads_as_blocked_on_the_exchange(cast, login, live_server):
    send_from_mailbox(cast.cardio, cast.bob, to=[cast.paul_patient.address], subject="Rendez-vous", text="Bonjour.")
    entry = Entry.objects.get(mailbox=cast.paul_box, message__subject="Rendez-vous")
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/patient/echange/{entry.pk}/")
    page.get_by_text("Ne plus recevoir de messages de ce correspondant").click()
    confirm = page.get_by_role("button", name="Bloquer", exact=True)
    assert confirm.bounding_box()["height"] >= 44
    confirm.click()
    page.wait_for_url("**/patient/parametres")
    assert Block.objects.filter(patient=cast.paul_patient, mailbox=cast.cardio).exists()

    page.goto(f"{live_server.url}/patient/echange/{entry.pk}/")
    note = page.get_by_test_id("blocked-note")
    assert "Vous avez bloqué Service de cardiologie — CH des Trois Pics" in note.inner_text()
    assert note.get_by_role("link", name="Débloquer dans mes paramètres").is_visible()
    assert page.get_by_text("Ne plus recevoir de messages de ce correspondant").count() == 0


def test_leaving_the_reply_by_mistake_asks_first(cast, login, live_server):
    entry = results_from_alice(cast)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/patient/message/{entry.pk}/repondre")
    page.fill("textarea[name=text]", "Une longue réponse pas encore envoyée.")
    asked = []

    def stay(dialog):
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.get_by_role("link", name="← Retour au message").click()
    assert asked == ["beforeunload"]
    assert page.url.endswith("/repondre")
    assert page.input_value("textarea[name=text]") == "Une longue réponse pas encore envoyée."
    # Sending is not leaving: no question.
    page.get_by_test_id("send-button").click()
    page.wait_for_url(f"**/patient/echange/{entry.pk}/")
    assert asked == ["beforeunload"]


def test_forms_that_refuse_say_why_out_loud_instead_of_a_passing_bubble(cast, login, live_server):
    """Saving a received document without a title, closing the space without ticking the box,
    adding a Word file to the record: the browser's short-lived bubble gave way to a summary
    read out and focused, each line leading to its field."""
    entry = results_from_alice(cast)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 375, "height": 812})

    page.goto(f"{live_server.url}/patient/piece-jointe/{entry.message.attachments.get().pk}/enregistrer")
    page.fill("input[name=title]", "")
    page.get_by_role("button", name="Enregistrer").click()
    summary = page.get_by_test_id("form-errors")
    summary.wait_for()
    assert summary.get_attribute("role") == "alert"
    assert page.evaluate("document.activeElement.dataset.testid") == "form-errors"
    assert "Donnez un titre au document" in summary.inner_text()
    assert "Donnez un titre au document" in described_by(page, "input[name=title]")
    summary.get_by_role("link", name="Titre").click()
    assert page.evaluate("document.activeElement.name") == "title"
    assert serious_violations(page) == []

    page.goto(f"{live_server.url}/patient/parametres/cloturer")
    page.get_by_role("button", name="Confirmer la clôture").click()
    page.get_by_test_id("form-errors").wait_for()
    assert "Cochez la case pour confirmer la clôture." in page.get_by_test_id("form-errors").inner_text()
    assert page.title().startswith("Erreur · Clôturer ma messagerie")
    cast.paul_patient.refresh_from_db()
    assert cast.paul_patient.space_state == cast.paul_patient.SpaceState.ACTIVE

    page.goto(f"{live_server.url}/dossier/documents/ajouter/")
    page.set_input_files(
        "input[type=file]", files=[{"name": "notes.docx", "mimeType": "application/msword", "buffer": DOCX}]
    )
    page.fill("input[name=title]", "Mes notes")
    page.fill("input[name=date]", "2025-03-01")
    page.get_by_role("button", name="Ajouter à mon dossier").click()
    page.get_by_test_id("form-errors").wait_for()
    assert page.evaluate("document.activeElement.dataset.testid") == "form-errors"
    assert "« notes.docx » n'est pas d'un format accepté" in page.get_by_test_id("form-errors").inner_text()
    assert serious_violations(page) == []


def test_deleting_a_measure_asks_first(cast, login, live_server):
    measure = Measure.objects.create(
        patient=cast.paul_patient, kind="weight", value=72, measured_on=datetime.date(2025, 3, 1)
    )
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/dossier/mesures/")
    page.locator("table.record-table").get_by_role("button", name="Supprimer").click()
    page.wait_for_url(re.compile(rf"/dossier/mesures/{measure.pk}/supprimer/"))
    assert page.get_by_role("heading", name="Supprimer cette mesure ?").is_visible()
    assert "Cette action est définitive." in page.inner_text("main")
    # A slip: "Non" keeps it.
    page.get_by_role("link", name="Non, garder la mesure").click()
    page.wait_for_url("**/dossier/mesures/")
    assert Measure.objects.filter(pk=measure.pk).exists()
    page.locator("table.record-table").get_by_role("button", name="Supprimer").click()
    confirm = page.get_by_role("button", name="Oui, supprimer la mesure")
    assert confirm.bounding_box()["height"] >= 44
    confirm.click()
    page.wait_for_url("**/dossier/mesures/")
    assert "Mesure supprimée." in page.locator(".flash").inner_text()
    assert not Measure.objects.filter(pk=measure.pk).exists()
