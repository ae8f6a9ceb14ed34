"""Compose, reply, reply-all, forward through the view and the real delivery path; attachments,
the encoded-size check, MDN request, INS recipients, drafts, signatures, suggestions."""

import json
from email import policy
from email.parser import BytesParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mailboxes.models import Entry, Folder, Mailbox, Membership, Message
from tests.factories import make_ins

pytestmark = pytest.mark.django_db


def post(client, **data):
    files = data.pop("files", None) or {}
    payload = {"sender": data.pop("sender"), "subject": "Objet", "body": "Texte", **data, **files}
    return client.post(reverse("webmail:compose"), payload)


def test_new_message_is_delivered_and_shown_in_sent(cast, client):
    client.force_login(cast.alice)
    form = client.get(reverse("webmail:compose")).context["form"]
    assert {c[0] for c in form.fields["sender"].choices} == {cast.alice_box.pk, cast.cardio.pk}
    response = post(
        client,
        sender=cast.alice_box.pk,
        to=cast.charlie_box.address,
        subject="Avis cardiologique",
        files={"attachments": [SimpleUploadedFile("ecg.pdf", b"%PDF-1.4 ecg", content_type="application/pdf")]},
    )
    message = Message.objects.get(subject="Avis cardiologique")
    sent = Entry.objects.get(mailbox=cast.alice_box, message=message)
    assert response.status_code == 302 and response["Location"] == reverse("webmail:message", args=[sent.pk])
    assert sent.folder.role == Folder.Role.SENT
    assert Entry.objects.filter(mailbox=cast.charlie_box, message=message, folder__role=Folder.Role.INBOX).exists()
    assert list(message.attachments.values_list("filename", flat=True)) == ["ecg.pdf"]


def test_reply_sets_threading_headers_and_marks_answered(cast, client, received):
    client.force_login(cast.bob)
    initial = client.get(reverse("webmail:compose"), {"reponse": received.pk, "mode": "reply"}).context["form"].initial
    assert initial["to"] == cast.charlie_box.address
    assert initial["sender"] == cast.cardio.pk
    assert initial["subject"] == "RE : Adressage de M. Lambert"
    assert "> je vous adresse M. Lambert" in initial["body"]
    post(
        client, sender=cast.cardio.pk, to=initial["to"], subject=initial["subject"], reply_to=received.pk, mode="reply"
    )
    reply = Message.objects.get(subject="RE : Adressage de M. Lambert")
    assert reply.in_reply_to == received.message.message_id
    assert received.message.message_id in reply.references.split()
    assert reply.thread_key == received.message.thread_key
    parsed = BytesParser(policy=policy.default).parsebytes(reply.raw.open("rb").read(), headersonly=True)
    assert parsed["In-Reply-To"].strip() == received.message.message_id
    assert received.message.message_id in parsed["References"]
    received.refresh_from_db()
    assert received.answered


def test_reply_all_leaves_out_the_users_own_boxes(cast, client, send):
    result = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address, cast.cardio.address], subject="Staff")
    entry = Entry.objects.get(mailbox=cast.alice_box, message=result.message)
    client.force_login(cast.alice)
    initial = client.get(reverse("webmail:compose"), {"reponse": entry.pk, "mode": "all"}).context["form"].initial
    assert initial["to"] == cast.charlie_box.address


def test_a_reply_goes_to_the_reply_to_of_a_message_received_from_another_operator(cast, client, settings):
    """RFC 5322 §3.6.2: a message naming a `Reply-To:` is answered there (another operator's
    applicative box and its return box), the sender otherwise."""
    from mailboxes.delivery import send_message
    from mailboxes.models import TrustedDomain
    from tests.patients.conftest import raw_from

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    software, team = "envois-auto@autre-operateur.mssante.fr", "secretariat@autre-operateur.mssante.fr"
    raw = raw_from(software, cast.alice_box.address, headers={"Reply-To": f"Secrétariat <{team}>"})
    message = send_message(raw, envelope_from=software, envelope_to=[cast.alice_box.address], source="smtp").message
    entry = Entry.objects.get(mailbox=cast.alice_box, message=message)
    client.force_login(cast.alice)
    page = client.get(reverse("webmail:compose"), {"reponse": entry.pk, "mode": "reply"})
    assert page.context["form"].initial["to"] == f"Secrétariat <{team}>"  # its display name kept
    # The composer says why the recipient is not the sender.
    note = f"« Répondre à » : l'expéditeur, {software}, demande que les réponses aillent à Secrétariat &lt;{team}&gt;"
    assert f'id="id_to" value="Secrétariat &lt;{team}&gt;"' in page.content.decode() and note in page.content.decode()
    assert note in client.get(reverse("webmail:compose"), {"reponse": entry.pk, "mode": "all"}).content.decode()
    forward = client.get(reverse("webmail:compose"), {"reponse": entry.pk, "mode": "forward"}).content.decode()
    assert "« Répondre à »" not in forward
    # Posted back with an error, the page still says it (and keeps what was typed).
    posted = {"sender": cast.alice_box.pk, "to": "pas-une-adresse", "subject": "RE: x", "body": "Bien reçu."}
    again = client.post(reverse("webmail:compose"), {**posted, "reply_to": entry.pk, "mode": "reply"})
    assert again.status_code == 400 and note in again.content.decode() and "Bien reçu." in again.content.decode()
    forward_again = client.post(reverse("webmail:compose"), {**posted, "reply_to": entry.pk, "mode": "forward"})
    assert forward_again.status_code == 400 and "« Répondre à »" not in forward_again.content.decode()


def test_a_reply_without_reply_to_says_nothing_of_it(cast, client, received):
    client.force_login(cast.bob)
    page = client.get(reverse("webmail:compose"), {"reponse": received.pk, "mode": "reply"}).content.decode()
    assert f'id="id_to" value="{cast.charlie_box.address}"' in page
    assert "« Répondre à »" not in page and "to-reply-to" not in page


def test_forward_keeps_the_chosen_attachments(cast, client, received):
    client.force_login(cast.bob)
    page = client.get(reverse("webmail:compose"), {"reponse": received.pk, "mode": "forward"})
    attachment = received.message.attachments.get()
    assert page.context["form"].initial["keep_attachments"] == [attachment.pk]
    assert page.context["form"].initial["subject"] == "TR : Adressage de M. Lambert"
    post(
        client,
        sender=cast.cardio.pk,
        to=cast.alice_box.address,
        subject="TR : Adressage de M. Lambert",
        reply_to=received.pk,
        mode="forward",
        keep_attachments=[attachment.pk],
    )
    forwarded = Message.objects.get(subject="TR : Adressage de M. Lambert")
    assert list(forwarded.attachments.values_list("filename", "sha256")) == [
        ("courrier-adressage.pdf", attachment.sha256)
    ]
    assert forwarded.in_reply_to == ""
    received.refresh_from_db()
    assert received.forwarded


def test_read_receipt_request(cast, client):
    client.force_login(cast.alice)
    post(client, sender=cast.alice_box.pk, to=cast.charlie_box.address, subject="AR", request_mdn="on")
    assert Message.objects.get(subject="AR").mdn_requested_to == cast.alice_box.address


def test_patient_by_ins_and_a_wrong_key(cast, client):
    client.force_login(cast.alice)
    post(client, sender=cast.alice_box.pk, to=cast.paul_patient.ins, subject="Consignes")
    message = Message.objects.get(subject="Consignes")
    assert Entry.objects.filter(mailbox=cast.paul_box, message=message).exists()
    wrong = cast.paul_patient.ins[:13] + f"{(int(cast.paul_patient.ins[13:]) + 1) % 100:02d}"
    response = post(client, sender=cast.alice_box.pk, to=wrong, subject="Erreur")
    assert response.status_code == 400
    assert "la clé ne correspond pas" in response.content.decode()
    assert not Message.objects.filter(subject="Erreur").exists()


def test_encoded_size_is_checked_before_sending(cast, client):
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(max_message_bytes=20_000)
    client.force_login(cast.alice)
    big = SimpleUploadedFile("scanner.pdf", b"%PDF" + b"\x00" * 16_000, content_type="application/pdf")
    response = post(
        client, sender=cast.alice_box.pk, to=cast.charlie_box.address, subject="Gros", files={"attachments": [big]}
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "Une fois encodé pour l&#x27;envoi, le message pèserait" in text and "19,5\xa0Ko" in text
    assert not Message.objects.filter(subject="Gros").exists()


def test_upload_request_answers_json(cast, client):
    client.force_login(cast.alice)
    ok = client.post(
        reverse("webmail:compose"),
        {"sender": cast.alice_box.pk, "to": cast.charlie_box.address, "subject": "Par XHR", "body": "x"},
        HTTP_X_WEBMAIL_UPLOAD="1",
    )
    assert ok.status_code == 200 and ok.json()["redirect"].startswith("/pro/message/")
    bad = client.post(
        reverse("webmail:compose"), {"sender": cast.alice_box.pk, "to": "", "body": "x"}, HTTP_X_WEBMAIL_UPLOAD="1"
    )
    assert bad.status_code == 400 and "Indiquez au moins un destinataire." in " ".join(bad.json()["errors"])


def test_refused_recipient_is_reported_and_the_others_delivered(cast, client):
    client.force_login(cast.alice)
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": f"{cast.charlie_box.address}, personne@ch-troispics.mssante.fr",
            "subject": "Partiel",
            "body": "x",
        },
        follow=True,
    )
    text = response.content.decode()
    assert "Non distribué à personne@ch-troispics.mssante.fr" in text
    assert Entry.objects.filter(mailbox=cast.charlie_box, message__subject="Partiel").exists()


def test_whole_refusal_keeps_the_form(cast, client):
    client.force_login(cast.alice)
    response = post(client, sender=cast.alice_box.pk, to="quelquun@gmail.com", subject="Hors espace")
    assert response.status_code == 400
    assert not Message.objects.filter(subject="Hors espace").exists()
    assert response.context["form"]["subject"].value() == "Hors espace"


def test_drafts_are_saved_replaced_reopened_and_removed_on_send(cast, client):
    client.force_login(cast.alice)
    data = {"sender": cast.alice_box.pk, "to": cast.charlie_box.address, "subject": "Brouillon", "body": "v1"}
    first = client.post(reverse("webmail:draft_save"), data).json()
    assert first["saved"]
    second = client.post(reverse("webmail:draft_save"), {**data, "body": "v2", "draft": first["draft"]}).json()
    assert second["draft"] == first["draft"]
    draft = Entry.objects.get(pk=first["draft"])
    assert draft.is_draft and draft.folder.role == Folder.Role.DRAFTS and draft.message.text_body == "v2"
    # Opening a draft from the list goes back to the editor, filled in.
    reopen = client.get(reverse("webmail:message", args=[draft.pk]), follow=True)
    assert reopen.context["form"].initial["body"] == "v2"
    post(client, sender=cast.alice_box.pk, to=cast.charlie_box.address, subject="Brouillon", draft=draft.pk)
    assert not Entry.objects.filter(pk=draft.pk).exists()
    assert Entry.objects.filter(mailbox=cast.charlie_box, message__subject="Brouillon").exists()


def test_other_users_cannot_save_into_someone_elses_draft(cast, client):
    client.force_login(cast.alice)
    data = {"sender": cast.alice_box.pk, "subject": "À moi", "body": "secret"}
    draft_id = client.post(reverse("webmail:draft_save"), data).json()["draft"]
    client.force_login(cast.charlie)
    client.post(
        reverse("webmail:draft_save"),
        {"sender": cast.charlie_box.pk, "subject": "Pirate", "body": "x", "draft": draft_id},
    )
    assert Entry.objects.get(pk=draft_id).message.text_body == "secret"


def test_signature_edited_by_owner_and_managers_only(cast, client):
    client.force_login(cast.alice)
    client.post(reverse("webmail:signature", args=[cast.alice_box.pk]), {"signature": "Dr Alice MARTIN\nCardiologie"})
    cast.alice_box.refresh_from_db()
    assert cast.alice_box.signature == "Dr Alice MARTIN\nCardiologie"
    body = client.get(reverse("webmail:compose"), {"bal": cast.alice_box.pk}).context["form"].initial["body"]
    assert body == "\n\n-- \nDr Alice MARTIN\nCardiologie"
    # Alice is the responsible professional of cardiologie@; Bob is a plain member.
    assert client.get(reverse("webmail:signature", args=[cast.cardio.pk])).status_code == 200
    client.force_login(cast.bob)
    assert client.post(reverse("webmail:signature", args=[cast.cardio.pk]), {"signature": "x"}).status_code == 403
    Membership.objects.filter(mailbox=cast.cardio, user=cast.bob).update(role=Membership.Role.MANAGER)
    assert (
        client.post(reverse("webmail:signature", args=[cast.cardio.pk]), {"signature": "Secrétariat"}).status_code
        == 302
    )


def suggestions(client, text):
    """What the composer's recipient fields ask (contacts, then the directory; POSTed by directory.js)."""
    return client.post(reverse("webmail:recipients"), {"q": text}).content.decode()


def test_suggestions_from_hosted_boxes_never_unlisted(cast, client):
    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(unlisted=True)
    client.force_login(cast.alice)
    compose_page = client.get(reverse("webmail:compose")).content.decode()
    assert f'data-directory-complete="{reverse("webmail:recipients")}"' in compose_page
    assert client.get(reverse("webmail:recipients"), {"q": "cardio"}).status_code == 405  # POST only
    assert cast.cardio.address in suggestions(client, "x@y.fr, cardio")
    assert cast.charlie_box.address not in suggestions(client, "charlie")


def test_ins_checked_as_typed_without_naming_the_patient(cast, client):
    client.force_login(cast.alice)
    good = suggestions(client, cast.paul_patient.ins)
    assert "Matricule INS valide." in good and "LAMBERT" not in good and "Lambert" not in good
    body = make_ins(seq=4242)[:13]
    short = suggestions(client, body)
    assert "15 caract" in short
    wrong = suggestions(client, body + "00")
    assert '"valid": false' in wrong
    # Patients get no recipient suggestions at all (issue 15 item 8).
    client.force_login(cast.paul)
    assert client.post(reverse("webmail:recipients"), {"q": cast.pauline_patient.ins}).status_code == 403


def test_compose_page_renders_json_errors_contract(cast, client):
    client.force_login(cast.alice)
    response = client.post(
        reverse("webmail:compose"),
        {"sender": cast.alice_box.pk, "to": "pas une adresse", "body": "x"},
        HTTP_X_WEBMAIL_UPLOAD="1",
    )
    assert response.status_code == 400
    assert any("pas une adresse" in e for e in json.loads(response.content)["errors"])


def test_reply_and_forward_quote_the_date_in_french(cast, client, received):
    """Issue 16 item 3: "Le , Dr … a écrit :" and "Date : " lost the date."""
    from django.utils import timezone
    from django.utils.formats import date_format

    moment = timezone.localtime(received.message.date)
    day = date_format(moment, "l j F Y")
    assert any(
        month in day
        for month in (
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        )
    )
    client.force_login(cast.bob)
    reply = client.get(reverse("webmail:compose"), {"reponse": received.pk, "mode": "reply"})
    body = reply.context["form"].initial["body"]
    assert f"Le {day} à {moment.hour} h {moment:%M}, Dr Charlie DURAND <{cast.charlie_box.address}> a écrit :" in body
    page = reply.content.decode()
    assert f"Le {day} à {moment.hour} h {moment:%M}, Dr Charlie DURAND" in page  # what the person sees in the editor
    forward = client.get(reverse("webmail:compose"), {"reponse": received.pk, "mode": "forward"})
    body = forward.context["form"].initial["body"]
    assert f"\nDate : {day} à {moment.hour} h {moment:%M}\n" in body
    assert f"\nDe : Dr Charlie DURAND <{cast.charlie_box.address}>\n" in body


def test_a_message_without_date_header_is_quoted_with_its_arrival(cast, client):
    from django.utils import timezone
    from django.utils.formats import date_format

    from mailboxes.delivery import send_message
    from mailboxes.models import TrustedDomain

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    external = "jean.dupont@autre-operateur.mssante.fr"
    raw = (
        f"From: Dr Jean DUPONT <{external}>\r\nTo: {cast.alice_box.address}\r\n"
        "Subject: Sans date\r\nMessage-ID: <sans-date@autre-operateur.mssante.fr>\r\n\r\nBonjour.\r\n"
    ).encode()
    send_message(raw, envelope_from=external, envelope_to=[cast.alice_box.address], source="smtp")
    entry = Entry.objects.get(mailbox=cast.alice_box, message__subject="Sans date")
    assert entry.message.date is None
    moment = timezone.localtime(entry.received_at)
    client.force_login(cast.alice)
    body = client.get(reverse("webmail:compose"), {"reponse": entry.pk}).context["form"].initial["body"]
    assert f"Le {date_format(moment, 'l j F Y')} à {moment.hour} h {moment:%M}, Dr Jean DUPONT" in body
    assert "Le , " not in body
