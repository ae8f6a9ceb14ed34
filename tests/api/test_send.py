"""POST /api/v1/messages through HTTP with real keys (issue 10 §1)."""

import base64

from audit.models import AuditEvent
from mailboxes.models import Entry, Message

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_send_to_patient_and_pro(cast, api):
    response = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.paul_box.address, cast.alice_box.address],
            "subject": "Compte rendu",
            "text": "Bonjour,\nvoici le compte rendu.",
            "attachments": [
                {
                    "filename": "cr.pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(PDF).decode(),
                }
            ],
            "request_read_receipt": True,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    message = Message.objects.get(pk=body["id"])
    assert body["message_id"] == message.message_id
    outcomes = {r["address"]: r["outcome"] for r in body["recipients"]}
    assert outcomes == {cast.paul_box.address: "delivered", cast.alice_box.address: "delivered"}
    assert message.sender_mailbox == api.box
    assert message.mdn_requested_to == api.box.address
    assert Entry.objects.filter(mailbox=cast.paul_box, message=message).exists()
    assert message.attachments.get().filename == "cr.pdf"
    # Every call is audited with the key's id, never the key.
    event = AuditEvent.objects.filter(action="api.call").latest("id")
    assert event.actor_label == f"api-key:{api.key.pk}" and event.outcome == "201"
    assert api.secret not in str(AuditEvent.objects.values_list("detail", "actor_label", "object_id").all())


def test_several_patients_get_one_message_each(cast, api):
    response = api.call.post(
        "/api/v1/messages",
        {"to": [cast.paul_box.address, cast.pauline_box.address], "subject": "Info", "text": "Bonjour."},
    )
    assert response.status_code == 201
    body = response.json()
    assert len(body["messages"]) == 2
    paul_msg = Message.objects.get(entries__mailbox=cast.paul_box)
    assert cast.pauline_box.address not in str(paul_msg.to)


def test_multipart_upload(cast, api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.call.post(
        "/api/v1/messages",
        data={
            "to": cast.alice_box.address,
            "subject": "Résultat",
            "text": "Ci-joint.",
            "files": [SimpleUploadedFile("res.pdf", PDF, content_type="application/pdf")],
        },
    )
    assert response.status_code == 201, response.content
    assert Message.objects.get(pk=response.json()["id"]).attachments.get().filename == "res.pdf"


def test_in_reply_to_threads(cast, api):
    first = api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "A", "text": "a"}).json()
    second = api.call.post(
        "/api/v1/messages",
        {"to": [cast.alice_box.address], "subject": "B", "text": "b", "in_reply_to": first["message_id"]},
    )
    assert second.status_code == 201
    assert Message.objects.get(pk=second.json()["id"]).in_reply_to == first["message_id"]
    unknown = api.call.post(
        "/api/v1/messages", {"to": [cast.alice_box.address], "subject": "B", "text": "b", "in_reply_to": "<nope@x>"}
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "in_reply_to_unknown"


def test_idempotency_replay_and_conflict(cast, api):
    body = {"to": [cast.alice_box.address], "subject": "Une fois", "text": "une seule fois"}
    first = api.call.post("/api/v1/messages", body, headers={"Idempotency-Key": "abc-1"})
    again = api.call.post("/api/v1/messages", body, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(subject="Une fois").count() == 1
    other = api.call.post("/api/v1/messages", dict(body, text="autre"), headers={"Idempotency-Key": "abc-1"})
    assert other.status_code == 409
    assert other["Content-Type"] == "application/problem+json"
    assert other.json()["type"] == "urn:mssante:api:problem:idempotency_conflict"


def test_send_with_message_model(cast, api):
    from automation.authoring import create_model

    model = create_model(
        mailbox=api.box,
        service="Cardiologie",
        name="Préparation",
        subject="Votre examen",
        body="Bonjour {{ prenom }}, à jeun {{ consignes }}.",
    )
    response = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address], "model": model.pk, "fields": {"consignes": "la veille"}}
    )
    assert response.status_code == 201, response.content
    message = Message.objects.get(pk=response.json()["id"])
    assert "à jeun la veille" in message.text_body
    missing = api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "model": model.pk})
    assert missing.status_code == 422 and missing.json()["code"] == "model_fields_missing"


def test_idempotency_window_and_purge(cast, api, settings):
    import datetime

    from django.utils import timezone

    from api.models import IdempotencyRecord
    from api.tasks import purge_idempotency_records

    body = {"to": [cast.alice_box.address], "subject": "Fenêtre", "text": "t"}
    api.call.post("/api/v1/messages", body, headers={"Idempotency-Key": "k"})
    IdempotencyRecord.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    again = api.call.post("/api/v1/messages", body, headers={"Idempotency-Key": "k"})
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Message.objects.filter(subject="Fenêtre").count() == 2
    IdempotencyRecord.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    assert purge_idempotency_records.apply().get() == 1


def test_large_base64_attachment_within_limit(cast, api):
    data = b"%PDF-1.4\n" + bytes(range(256)) * 12_000  # about 3 MB, over Django's 2.5 MB form limit
    response = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.alice_box.address],
            "subject": "Gros",
            "text": "t",
            "attachments": [
                {
                    "filename": "gros.pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(data).decode(),
                }
            ],
        },
    )
    assert response.status_code == 201, response.content[:300]
    assert Message.objects.get(pk=response.json()["id"]).attachments.get().size == len(data)


def test_the_call_event_goes_in_with_the_delivery(cast, api):
    """One `api.call` event per call, linked in the delivery's chain right after its events (one
    chain head for both); the chain verifies. Several patients (one message each): still one."""
    from audit.chain import verify

    response = api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "subject": "CR", "text": "Bonjour."})
    assert response.status_code == 201, response.content
    own = list(AuditEvent.objects.filter(message_id=response.json()["id"]).order_by("seq"))
    call = AuditEvent.objects.get(action="api.call")
    assert call.outcome == "201" and call.object_id == str(api.key.pk) and call.mailbox_id == api.box.pk
    assert call.chain_id == own[-1].chain_id and call.seq == own[-1].seq + 1
    several = api.call.post(
        "/api/v1/messages",
        {"to": [cast.paul_box.address, cast.pauline_box.address], "subject": "Info", "text": "Bonjour."},
        headers={"Idempotency-Key": "several-1"},
    )
    assert several.status_code == 201 and len(several.json()["messages"]) == 2
    assert list(AuditEvent.objects.filter(action="api.call").values_list("outcome", flat=True)) == ["201", "201"]
    assert verify().ok


def test_a_refused_call_has_its_own_event_with_its_status(cast, api):
    refused = api.call.post("/api/v1/messages", {"to": ["x@inconnu.mssante.fr"], "subject": "s", "text": "t"})
    assert refused.status_code == 422
    assert list(AuditEvent.objects.filter(action="api.call").values_list("outcome", flat=True)) == ["422"]


def test_which_calls_open_a_transaction_of_their_own(cast):
    """A plain message is one delivery, its own transaction; an idempotency answer, a model,
    several patients or a reply's mark on the answered entry commit with it in the call's."""
    from api.sending import needs_one_transaction

    plain = {"to": [cast.paul_box.address, cast.alice_box.address], "cc": [], "in_reply_to": "", "model": None}
    assert not needs_one_transaction(plain, idempotent=False)
    assert needs_one_transaction(plain, idempotent=True)
    assert needs_one_transaction(dict(plain, cc=[cast.pauline_box.address]), idempotent=False)
    assert needs_one_transaction(dict(plain, model=3), idempotent=False)
    assert needs_one_transaction(dict(plain, in_reply_to="<a@b>"), idempotent=False)


def test_a_call_finds_its_box_sent_folder_with_the_key(cast, api, client_for):
    """The key's query brings the id of its box's SENT folder: sending to a patient asks the
    database for no folder, and the box's copy is in SENT. A box whose folders are missing gets
    them, as before."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mailboxes.models import Folder, Mailbox
    from tests.api.conftest import make_key

    def send(subject):
        response = api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "subject": subject, "text": "B"})
        assert response.status_code == 201, response.content
        return Message.objects.get(pk=response.json()["id"])

    send("Premier")  # warms the process's caches (trust domains, templates)
    with CaptureQueriesContext(connection) as queries:
        message = send("Second")
    statements = [q["sql"] for q in queries.captured_queries]
    sent_lookups = [sql for sql in statements if "'sent'" in sql and "api_apikey" not in sql]
    assert not sent_lookups and "'sent'" in statements[0], statements
    sent = Folder.objects.get(mailbox=api.box, role=Folder.Role.SENT)
    assert Entry.objects.get(mailbox=api.box, message=message).folder_id == sent.pk

    bare = Mailbox.objects.create(
        kind=Mailbox.Kind.APPLICATIVE, address="sil_noreply@ch-troispics.mssante.fr", domain=cast.d_troispics
    )
    Folder.objects.filter(mailbox=bare).delete()
    _key, secret = make_key(bare)
    response = client_for(secret).post("/api/v1/messages", {"to": [cast.paul_box.address], "subject": "S", "text": "B"})
    assert response.status_code == 201, response.content
    sent = Folder.objects.get(mailbox=bare, role=Folder.Role.SENT)
    assert Entry.objects.get(mailbox=bare, message_id=response.json()["id"]).folder_id == sent.pk


def test_a_model_send_counts_against_the_box_daily_limit(cast, api, settings):
    """The API's model sends go through the box's daily limit (AUTOMATION_DAILY_LIMIT) as the
    webmail's convocations and the lists do: over it, a 429 problem and nothing sent."""
    from automation.authoring import create_model

    model = create_model(
        mailbox=api.box, service="Cardiologie", name="Consignes", subject="Votre examen", body="Bonjour {{ prenom }}."
    )
    settings.AUTOMATION_DAILY_LIMIT = 2
    first = api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "model": model.pk})
    assert first.status_code == 201, first.content
    before = Message.objects.count()
    both = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address, cast.pauline_box.address], "model": model.pk}
    )
    assert both.status_code == 429, both.content
    assert both["Content-Type"] == "application/problem+json"
    problem = both.json()
    assert problem["code"] == "daily_limit_reached" and problem["remaining_today"] == 1
    assert "peut encore envoyer 1 message aujourd'hui (limite quotidienne : 2) : 2 demandés." in problem["detail"]
    assert int(both["Retry-After"]) > 0
    assert Message.objects.count() == before  # nothing half-sent
    one = api.call.post("/api/v1/messages", {"to": [cast.pauline_box.address], "model": model.pk})
    assert one.status_code == 201, one.content
