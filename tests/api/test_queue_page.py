"""The return-box queue in the webmail (issue 10 §3): a member of the organisational box sees a
patient's reply "à traiter" with the identity and documents by kind, and files it with a note;
another professional gets 404."""

from api.models import ReturnReply
from health_record.models import Document
from tests.api.conftest import patient_reply

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_member_sees_and_files_reply(transactional_db, cast, api, client):
    import datetime
    import hashlib

    from django.core.files.base import ContentFile

    sent = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address], "subject": "Pré-admission", "text": "t"}
    ).json()
    card = b"%PDF-1.4 carte vitale\n"
    doc = Document(
        patient=cast.paul_patient,
        kind=Document.Kind.ADMINISTRATIVE,
        category=Document.Category.INSURANCE_CARD,
        title="Carte",
        date=datetime.date.today(),
        filename="carte.pdf",
        content_type="application/pdf",
        size=len(card),
        sha256=hashlib.sha256(card).hexdigest(),
    )
    doc.file.save("carte.pdf", ContentFile(card), save=True)
    patient_reply(cast, sent, "voici", [("carte.pdf", "application/pdf", card), ("photo.pdf", "application/pdf", PDF)])
    reply = ReturnReply.objects.get()
    client.force_login(cast.bob)
    nav = client.get(f"/pro/bal/{cast.cardio.pk}/", follow=True)
    assert f"/pro/retours-patients/bal/{cast.cardio.pk}/" in nav.content.decode()
    page = client.get(f"/pro/retours-patients/bal/{cast.cardio.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Paul" in html and cast.paul_patient.ins in html and "à traiter" in html
    assert "document administratif" in html and "fichier de l&#x27;appareil" in html
    filed = client.post(f"/pro/retours-patients/bal/{cast.cardio.pk}/{reply.pk}/classer/", {"note": "vu"}, follow=True)
    assert filed.status_code == 200 and "Aucune réponse à traiter" in filed.content.decode()
    reply.refresh_from_db()
    assert reply.status == "filed" and reply.filed_by == cast.bob and reply.note == "vu"

    client.force_login(cast.charlie)
    assert client.get(f"/pro/retours-patients/bal/{cast.cardio.pk}/").status_code == 404
    assert client.post(f"/pro/retours-patients/bal/{cast.cardio.pk}/{reply.pk}/classer/").status_code == 404


def test_a_note_over_2000_characters_is_refused_and_kept_in_the_form(transactional_db, cast, api, client):
    """The page took a long note and silently cut it at 2000 characters where the API answers
    422: now nothing is filed, the error is shown at the reply's form with the note as typed."""
    from django.utils.html import escape

    sent = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address], "subject": "Pré-admission", "text": "t"}
    ).json()
    patient_reply(cast, sent, "voici")
    reply = ReturnReply.objects.get()
    client.force_login(cast.bob)
    url = f"/pro/retours-patients/bal/{cast.cardio.pk}/{reply.pk}/classer/"
    long_note = "Rappelé le patient <ok> ; " + "x" * 1990
    assert len(long_note) == 2016
    refused = client.post(url, {"note": long_note})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert "La note fait 2016 caractères : 2000 au plus." in html
    assert escape(long_note) in html  # kept, as typed, to shorten it
    reply.refresh_from_db()
    assert reply.status == "to_process" and reply.note == "" and reply.filed_at is None
    filed = client.post(url, {"note": long_note[:2000]}, follow=True)
    assert filed.status_code == 200
    reply.refresh_from_db()
    assert reply.status == "filed" and reply.note == long_note[:2000]
