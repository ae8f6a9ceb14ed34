"""The patient's pages (RULES.md §3): inbox, message, attachments, banner, reply composer,
"save to my documents", settings; and the professional's close action."""

import html

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from health_record.models import Document
from mailboxes.models import Entry
from patients.models import Block, Conversation, Patient
from tests.patients.conftest import PDF, PNG, inbox_of, pro_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def paul(cast, client):
    client.force_login(cast.paul)
    return client


def test_inbox_lists_conversations_by_box_with_unread_state(cast, paul):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="Rappel")
    pro_send(cast.cardio, cast.bob, cast.paul_patient.address)
    page = paul.get("/patient/").content.decode()
    assert page.count('data-testid="conversation-link"') == 2
    assert "Service de cardiologie — CH des Trois Pics" in page
    assert "2 non lus" in page and "1 non lu" in page
    # The patient never sees the raw address of the professional.
    assert cast.alice_box.address not in page


def test_message_page_marks_read_audits_and_shows_attachments(cast, paul):
    sent = pro_send(
        cast.alice_box,
        cast.alice,
        cast.paul_patient.address,
        attachments=[
            ("cr.pdf", "application/pdf", PDF),
            ("photo.png", "image/png", PNG),
            ("note.rtf", "application/rtf", b"{\\rtf1 x}"),
        ],
    ).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    response = paul.get(f"/patient/message/{entry.pk}/")
    page = response.content.decode()
    assert response.status_code == 200
    ids = {a.filename: a.pk for a in sent.attachments.all()}
    assert f"/operateur/piece-jointe/{ids['cr.pdf']}?inline=1" in page
    assert f'<img class="attachment-preview" src="/operateur/piece-jointe/{ids["photo.png"]}?inline=1"' in page
    assert f"/operateur/piece-jointe/{ids['note.rtf']}?inline=1" not in page
    assert f"/operateur/piece-jointe/{ids['note.rtf']}" in page
    assert 'data-testid="reply-button"' in page
    assert cast.alice_box.address not in page
    entry.refresh_from_db()
    assert entry.seen
    assert AuditEvent.objects.filter(action="message.read", actor=cast.paul, message_id=sent.pk).exists()
    # The preview goes through core's access-checked download view.
    inline = paul.get(f"/operateur/piece-jointe/{ids['cr.pdf']}?inline=1")
    assert inline.status_code == 200
    # The same preview headers as a document of the record (mailboxes.file_headers).
    assert inline["Content-Security-Policy"].startswith("sandbox;")
    assert inline["X-Frame-Options"] == "SAMEORIGIN" and inline["Content-Disposition"].startswith("inline")


def test_closed_banner_and_no_reply_button_on_any_message_of_that_box(cast, paul):
    first = pro_send(cast.cardio, cast.bob, cast.paul_patient.address).message
    pro_send(cast.cardio, cast.bob, cast.paul_patient.address, subject="[FIN]")
    other = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    for message in Entry.objects.filter(mailbox=cast.paul_box, message__sender_mailbox=cast.cardio):
        page = paul.get(f"/patient/message/{message.pk}/").content.decode()
        assert "Vous ne pouvez plus répondre : Service de cardiologie — CH des Trois Pics a clôturé cet échange" in page
        assert 'data-testid="reply-button"' not in page
    first_entry = inbox_of(cast.paul_box).get(message=first)
    assert 'data-testid="reply-button"' not in paul.get(f"/patient/echange/{first_entry.pk}/").content.decode()
    refused = paul.get(f"/patient/message/{first_entry.pk}/repondre")
    assert refused.status_code == 302 and flashes(refused) == ["Vous ne pouvez pas répondre à ce message."]
    other_page = paul.get(f"/patient/message/{inbox_of(cast.paul_box).get(message=other).pk}/").content.decode()
    assert 'data-testid="reply-button"' in other_page
    assert "a clôturé cet échange" not in other_page


def test_reply_with_a_device_pdf(cast, paul):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    response = paul.post(
        f"/patient/message/{entry.pk}/repondre",
        {"text": "Voici mon bilan.", "files": [SimpleUploadedFile("bilan.pdf", PDF, "application/pdf")]},
    )
    assert response.status_code == 302 and flashes(response) == ["Votre message a été envoyé."]
    reply = inbox_of(cast.alice_box).get().message
    assert reply.in_reply_to == sent.message_id
    assert reply.subject == f"RE : {sent.subject}"  # the one reply prefix (mailboxes.compose)
    assert [a.filename for a in reply.attachments.all()] == ["bilan.pdf"]
    assert AuditEvent.objects.filter(action="message.submitted", actor=cast.paul, message_id=reply.pk).exists()


def test_reply_refuses_a_file_by_content_and_keeps_the_text(cast, paul):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    response = paul.post(
        f"/patient/message/{entry.pk}/repondre",
        {"text": "Mon texte tapé avec soin.", "files": [SimpleUploadedFile("bilan.pdf", b"<html>pas un pdf</html>")]},
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "n&#x27;est pas d&#x27;un format accepté" in page or "n'est pas d'un format accepté" in page
    assert "Mon texte tapé avec soin." in page
    assert not inbox_of(cast.alice_box).exists()


def test_reply_refuses_a_txt_file(cast, paul):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    response = paul.post(
        f"/patient/message/{entry.pk}/repondre",
        {"text": "Texte", "files": [SimpleUploadedFile("notes.txt", b"du texte")]},
    )
    assert response.status_code == 400
    assert not inbox_of(cast.alice_box).exists()


def test_reply_refuses_a_file_over_the_limit(cast, paul, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    response = paul.post(
        f"/patient/message/{entry.pk}/repondre",
        {"text": "Texte gardé", "files": [SimpleUploadedFile("gros.pdf", PDF + b"0" * 2000)]},
    )
    assert response.status_code == 400
    assert "la limite est de" in response.content.decode()
    assert "Texte gardé" in response.content.decode()


def test_reply_with_a_record_document_and_the_profile_pdf(cast, paul):
    import datetime

    from health_record.api import save_document

    document = save_document(
        cast.paul_patient,
        data=PDF,
        filename="groupe-sanguin.pdf",
        title="Carte de groupe sanguin",
        date=datetime.date(2025, 1, 2),
        category="blood_group",
        kind="admin",
    )
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    form = paul.get(f"/patient/message/{entry.pk}/repondre").content.decode()
    assert "Carte de groupe sanguin" in form and "Joindre mon profil médical" in form
    response = paul.post(
        f"/patient/message/{entry.pk}/repondre",
        {"text": "Voici.", "documents": [str(document.pk)], "include_profile": "on"},
    )
    assert response.status_code == 302
    reply = inbox_of(cast.alice_box).get().message
    names = sorted(a.filename for a in reply.attachments.all())
    assert "groupe-sanguin.pdf" in names and len(names) == 2
    assert AuditEvent.objects.filter(action="profile.sent", message_id=reply.pk).exists()


def test_patient_cannot_attach_another_patients_document(cast, paul):
    import datetime

    from health_record.api import save_document

    theirs = save_document(
        cast.pauline_patient,
        data=PDF,
        filename="x.pdf",
        title="x",
        date=datetime.date(2025, 1, 2),
        category="other",
        kind="health",
    )
    save_document(
        cast.paul_patient,
        data=PDF,
        filename="y.pdf",
        title="y",
        date=datetime.date(2025, 1, 2),
        category="other",
        kind="health",
    )
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    response = paul.post(f"/patient/message/{entry.pk}/repondre", {"text": "x", "documents": [str(theirs.pk)]})
    assert response.status_code == 400  # the form says the choice is not valid
    assert "Sélectionnez un choix valide" in response.content.decode()
    assert not inbox_of(cast.alice_box).exists()


def test_compose_to_a_pharmacy_that_dispensed(cast, paul, pharmacy):
    import datetime

    from patients.models import PharmacyDispensation

    response = paul.get("/patient/ecrire")
    assert response.status_code == 302 and response["Location"] == "/patient/"
    PharmacyDispensation.objects.create(
        patient=cast.paul_patient, pharmacy_mailbox=pharmacy.box, dispensed_on=datetime.date.today()
    )
    assert pharmacy.box.address in paul.get("/patient/ecrire").content.decode()
    response = paul.post(
        "/patient/ecrire",
        {
            "to": pharmacy.box.address,
            "subject": "Mon ordonnance",
            "text": "Bonjour",
            "files": [SimpleUploadedFile("ordo.jpg", b"\xff\xd8\xff\xe0" + b"0" * 50)],
        },
    )
    assert response.status_code == 302
    assert inbox_of(pharmacy.box).get().message.attachments.get().filename == "ordo.jpg"


def test_save_attachment_to_my_documents(cast, paul):
    sent = pro_send(
        cast.alice_box, cast.alice, cast.paul_patient.address, attachments=[("cr.pdf", "application/pdf", PDF)]
    ).message
    attachment = sent.attachments.get()
    assert paul.get(f"/patient/piece-jointe/{attachment.pk}/enregistrer").status_code == 200
    response = paul.post(
        f"/patient/piece-jointe/{attachment.pk}/enregistrer",
        {"title": "Compte rendu de cardiologie", "date": "2026-11-20", "category": "report", "kind": "health"},
    )
    assert response.status_code == 302
    document = Document.objects.get(patient=cast.paul_patient)
    assert (document.title, document.category, document.source_attachment_id) == (
        "Compte rendu de cardiologie",
        "report",
        attachment.pk,
    )


def test_save_attachment_refuses_a_wrong_format_or_size(cast, paul, settings):
    sent = pro_send(
        cast.alice_box,
        cast.alice,
        cast.paul_patient.address,
        attachments=[("page.html", "text/html", b"<html>x</html>"), ("gros.pdf", "application/pdf", PDF + b"0" * 3000)],
    ).message
    settings.HEALTH_DOCUMENT_MAX_BYTES = 2000
    data = {"title": "x", "date": "2026-11-20", "category": "report", "kind": "health"}
    for attachment in sent.attachments.all():
        response = paul.post(f"/patient/piece-jointe/{attachment.pk}/enregistrer", data)
        assert response.status_code == 400
        if attachment.filename == "gros.pdf":
            assert (
                "Ce fichier pèse 3,0\xa0Ko : un document de votre dossier ne peut pas dépasser 2,0\xa0Ko."
                in html.unescape(response.content.decode())
            )
    assert not Document.objects.exists()


def test_settings_email_block_unblock_and_close(cast, paul):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    page = paul.get("/patient/parametres").content.decode()
    assert "Dr Alice MARTIN" in page
    saved = paul.post("/patient/parametres", {"notification_email": "nouvelle@exemple.org"})
    assert flashes(saved) == ["Votre adresse de notification est enregistrée."]
    paul.get("/patient/parametres")  # the page shows (and uses up) the message
    cast.paul_patient.refresh_from_db()
    assert cast.paul_patient.notification_email == "nouvelle@exemple.org"

    blocked = paul.post(f"/patient/parametres/bloquer/{cast.alice_box.pk}", {"confirm": "on"})
    assert blocked.status_code == 302 and flashes(blocked) == ["Dr Alice MARTIN ne pourra plus vous écrire."]
    paul.get("/patient/parametres")
    block = Block.objects.get(patient=cast.paul_patient)
    # A box that never wrote cannot be targeted.
    assert paul.post(f"/patient/parametres/bloquer/{cast.charlie_box.pk}").status_code == 404
    unblocked = paul.post(f"/patient/parametres/debloquer/{block.pk}")
    assert unblocked.status_code == 302 and flashes(unblocked) == ["Dr Alice MARTIN peut de nouveau vous écrire."]
    assert not Block.objects.exists()

    response = paul.post("/patient/parametres/cloturer", {})
    assert response.status_code == 200  # confirmation required
    cast.paul_patient.refresh_from_db()
    assert cast.paul_patient.space_state == Patient.SpaceState.ACTIVE
    paul.post("/patient/parametres/cloturer", {"confirm": "on"})
    cast.paul_patient.refresh_from_db()
    assert cast.paul_patient.space_state == Patient.SpaceState.CLOSED
    for action in ("patient.blocked", "patient.unblocked", "patient.space_closed"):
        assert AuditEvent.objects.filter(action=action, actor=cast.paul).exists()


def test_blocking_a_professional_of_another_operator_from_the_pages(cast, paul, settings):
    """A professional hosted elsewhere has no box here: the patient blocks them from a message
    they sent (conversation page, or the settings' list), and reads their name, never the address."""
    from mailboxes.delivery import send_message
    from mailboxes.models import TrustedDomain
    from tests.patients.conftest import raw_from

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    outside = "dr.externe@autre-operateur.mssante.fr"
    raw = raw_from(outside, cast.paul_patient.address, from_name="Dr Jeanne Externe")
    send_message(raw, envelope_from=outside, envelope_to=[cast.paul_patient.address], source="smtp")
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    entry = inbox_of(cast.paul_box).get(message__from_address=outside)
    conversation = paul.get(f"/patient/echange/{entry.pk}/").content.decode()
    assert f'action="/patient/parametres/bloquer-correspondant/{entry.pk}"' in conversation
    page = paul.get("/patient/parametres").content.decode()
    assert "Bloquer Dr Jeanne Externe" in page and "Bloquer Dr Alice MARTIN" in page and outside not in page
    # A message of a box hosted here, or another patient's message, is not a way in.
    alice_entry = inbox_of(cast.paul_box).get(message__from_address=cast.alice_box.address)
    assert (
        paul.post(f"/patient/parametres/bloquer-correspondant/{alice_entry.pk}", {"confirm": "on"}).status_code == 404
    )
    raw = raw_from(outside, cast.pauline_patient.address, from_name="Dr Jeanne Externe")
    send_message(raw, envelope_from=outside, envelope_to=[cast.pauline_patient.address], source="smtp")
    pauline_entry = inbox_of(cast.pauline_box).get()
    assert (
        paul.post(f"/patient/parametres/bloquer-correspondant/{pauline_entry.pk}", {"confirm": "on"}).status_code == 404
    )
    assert not Block.objects.exists()

    confirm = paul.post(f"/patient/parametres/bloquer-correspondant/{entry.pk}")
    assert confirm.status_code == 200 and "Oui, bloquer Dr Jeanne Externe" in confirm.content.decode()
    assert not Block.objects.exists()  # nothing without the confirmation
    blocked = paul.post(f"/patient/parametres/bloquer-correspondant/{entry.pk}", {"confirm": "on"})
    assert flashes(blocked) == ["Dr Jeanne Externe ne pourra plus vous écrire."]
    page = paul.get("/patient/parametres").content.decode()
    assert "Débloquer Dr Jeanne Externe" in page and "Bloquer Dr Jeanne Externe" not in page
    block = Block.objects.get(patient=cast.paul_patient)
    unblocked = paul.post(f"/patient/parametres/debloquer/{block.pk}")
    assert flashes(unblocked) == ["Dr Jeanne Externe peut de nouveau vous écrire."]
    assert not Block.objects.exists()
    for action in ("patient.blocked", "patient.unblocked"):
        assert AuditEvent.objects.filter(action=action, actor=cast.paul).exists()


def test_pro_close_conversation_view(cast, client):
    pro_send(cast.cardio, cast.bob, cast.paul_patient.address)
    url = f"/patient/pro/echange/{cast.cardio.pk}/{cast.paul_patient.pk}/cloturer"
    client.force_login(cast.charlie)
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    client.force_login(cast.bob)
    confirm = client.get(url).content.decode()
    assert "Paul LAMBERT" in confirm and cast.paul_patient.address in confirm
    assert Conversation.objects.get(mailbox=cast.cardio, patient=cast.paul_patient).state == "open"
    response = client.post(url, {"next": "/pro/", "confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/pro/"
    assert Conversation.objects.get(mailbox=cast.cardio, patient=cast.paul_patient).state == "closed"
    assert client.post(url, {"next": "https://ailleurs.example/", "confirm": "on"})["Location"] == "/"


def test_pro_panel_partial(cast, rf):
    from django.template.loader import render_to_string

    from patients.conversation import conversation_for, delivery_states

    sent = pro_send(cast.cardio, cast.bob, cast.paul_patient.address, request_mdn=True).message
    request = rf.get("/pro/")
    html = render_to_string(
        "patients/_pro_conversation_panel.html",
        {
            "mailbox": cast.cardio,
            "patient": cast.paul_patient,
            "conversation": conversation_for(cast.cardio, cast.paul_patient),
        },
        request=request,
    )
    assert "Paul LAMBERT" in html and cast.paul_patient.address in html and 'data-state="open"' in html
    assert f"/patient/pro/echange/{cast.cardio.pk}/{cast.paul_patient.pk}/cloturer" in html
    assert 'method="post"' in html and 'name="confirm"' in html and " required>" in html
    states = delivery_states(sent)
    assert states[0]["status"] == "delivered" and "Paul LAMBERT" in states[0]["label"]
    html = render_to_string("patients/_delivery_states.html", {"states": states})
    assert "distribué" in html


def test_professional_cannot_open_the_patient_inbox(cast, client):
    client.force_login(cast.alice)
    assert client.get("/patient/").status_code == 404


def test_html_only_message_is_shown_sanitised(cast, paul):
    sent = pro_send(
        cast.alice_box,
        cast.alice,
        cast.paul_patient.address,
        text="",
        html="<p>Bonjour <b>Paul</b></p><script>alert(1)</script>",
    ).message
    page = paul.get(f"/patient/message/{inbox_of(cast.paul_box).get(message=sent).pk}/").content.decode()
    assert "<b>Paul</b>" in page
    assert "alert(1)" not in page


def flashes(response) -> list[str]:
    """The messages the next page shows (django.contrib.messages), as the person reads them."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_a_reply_to_an_applicative_box_of_another_operator_goes_where_its_reply_to_says(cast, paul):
    """RULES.md §6: an applicative box's replies go to its return box. Hosted elsewhere, that box
    is named by the message's `Reply-To:`, followed when it is in the sender's own domain."""
    from mailboxes.delivery import send_message
    from mailboxes.models import Message, TrustedDomain
    from patients import policy
    from tests.patients.conftest import raw_from

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    TrustedDomain.objects.create(name="ailleurs.mssante.fr")
    noreply, team = "envois-auto@autre-operateur.mssante.fr", "cardiologie@autre-operateur.mssante.fr"
    patient = cast.paul_patient.address

    def received(reply_to: str):
        raw = raw_from(noreply, patient, from_name="CH Externe", headers={"Reply-To": reply_to})
        message = send_message(raw, envelope_from=noreply, envelope_to=[patient], source="smtp").message
        return inbox_of(cast.paul_box).get(message=message)

    def reply_to(entry) -> list[str]:
        before = Message.objects.filter(sender_mailbox=cast.paul_box).count()
        response = paul.post(f"/patient/message/{entry.pk}/repondre", {"text": "Bien reçu, merci."})
        assert response.status_code == 302 and flashes(response)[-1] == "Votre message a été envoyé."
        assert Message.objects.filter(sender_mailbox=cast.paul_box).count() == before + 1
        sent = Message.objects.filter(sender_mailbox=cast.paul_box).latest("pk")
        return [r["address"] for r in sent.to]

    entry = received(f"Service de cardiologie <{team.upper()}>")
    assert entry.message.reply_to == team
    # The reply page names the structure that wrote (RULES.md §3: a name, never the raw address).
    page = paul.get(f"/patient/message/{entry.pk}/repondre").content.decode()
    assert "<h1>Répondre à CH Externe</h1>" in page and team not in page and noreply not in page
    assert reply_to(entry) == [team]
    assert [address for address, _ in policy.outside_recipients(cast.paul_patient)] == [team]
    # A Reply-To outside the sender's domain is not followed: the reply goes to the sender.
    elsewhere = received("secretariat@ailleurs.mssante.fr")
    assert reply_to(elsewhere) == [noreply]
    # The exchange closes from either address: a [FIN] from the sending box names the team too.
    raw = raw_from(noreply, patient, subject="[FIN]", headers={"Reply-To": team})
    send_message(raw, envelope_from=noreply, envelope_to=[patient], source="smtp")
    assert policy.patient_may_write_to(cast.paul_patient, team).code == "conversation_closed"
