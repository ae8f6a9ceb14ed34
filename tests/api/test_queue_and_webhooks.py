"""The return-box queue and webhooks (issue 10 §3–4): a patient's reply to what the DPI sent is
matched, listed "à traiter" and filed through the API; webhooks reach a real HTTP server on
loopback and their signature checks."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api import webhooks
from api.models import ApiKey, ReturnReply, WebhookDelivery
from mailboxes.compose import send_from_mailbox
from mailboxes.models import Message
from tests.api.conftest import patient_reply

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class Receiver:
    def __init__(self, fail=False):
        self.received = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((self.headers, body))
                self.send_response(500 if outer.fail else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


def check_signature(secret, headers, body):
    timestamp = headers["X-MSS-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-MSS-Signature"], expected)
    assert abs(time.time() - int(timestamp)) < 300


def test_patient_reply_queued_and_filed_through_api(transactional_db, cast, api, receiver):
    ApiKey.objects.filter(pk=api.key.pk).update(webhook_url=receiver.url)
    api.key.refresh_from_db()
    sent = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address], "subject": "Pré-admission", "text": "Merci de répondre."}
    ).json()
    original = Message.objects.get(pk=sent["id"])
    delivered = receiver.wait_for(1)
    assert json.loads(delivered[0][1])["event"] == "message.delivered"
    # Paul answers from his space: the reply goes to the return box (Reply-To), with a file.
    patient_reply(cast, sent, "Voici ma carte.", [("carte.pdf", "application/pdf", PDF)])
    reply = ReturnReply.objects.get()
    assert reply.original == original and reply.matched_by == "in_reply_to" and reply.patient == cast.paul_patient
    hooks = receiver.wait_for(2)
    headers, body = hooks[1]
    check_signature(api.key.webhook_secret, headers, body)
    assert json.loads(body)["event"] == "reply.received" and json.loads(body)["data"]["reply"] == reply.pk

    listed = api.call.get(f"/api/v1/boxes/{cast.cardio.address}/replies", {"status": "to_process"})
    assert listed.status_code == 200
    (item,) = listed.json()["results"]
    assert item["patient"]["ins"] == cast.paul_patient.ins
    assert item["in_reply_to_message_id"] == original.message_id
    assert [(d["filename"], d["kind"]) for d in item["documents"]] == [("carte.pdf", "device")]
    document = api.call.get(item["documents"][0]["url"])
    assert document.status_code == 200 and b"".join(document.streaming_content) == PDF

    filed = api.call.post(f"/api/v1/boxes/{cast.cardio.address}/replies/{reply.pk}/filed", {"note": "Classé au DPI"})
    assert filed.status_code == 200 and filed.json()["status"] == "filed"
    assert api.call.get(f"/api/v1/boxes/{cast.cardio.address}/replies").json()["results"] == []
    reply.refresh_from_db()
    assert reply.note == "Classé au DPI" and reply.filed_by_key == api.key


def test_reply_matched_by_patient_when_headers_lost(transactional_db, cast, api):
    api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "subject": "Info", "text": "t"})
    send_from_mailbox(
        cast.paul_box, cast.paul, to=[cast.cardio.address], subject="question", text="?", source="patient"
    )
    assert ReturnReply.objects.get().matched_by == "patient"


def test_sweeper_enters_missed_replies(transactional_db, cast, api):
    from api import returns
    from api.tasks import collect_return_replies

    api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "subject": "Info", "text": "t"})
    send_from_mailbox(cast.paul_box, cast.paul, to=[cast.cardio.address], subject="q", text="?", source="patient")
    ReturnReply.objects.all().delete()  # as if the process died before the receiver ran
    assert collect_return_replies.apply().get() == 1
    assert returns.sweep() == 0


def test_message_status_timeline_and_box_reading(transactional_db, cast, api):
    sent = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.alice_box.address, "x@inconnu.mssante.fr"],
            "subject": "s",
            "text": "t",
            "request_read_receipt": True,
        },
    ).json()
    status = api.call.get(f"/api/v1/messages/{sent['id']}").json()
    states = {r["address"]: r for r in status["recipients"]}
    assert states[cast.alice_box.address]["status"] == "delivered"
    assert [s["event"] for s in states[cast.alice_box.address]["timeline"]] == ["submitted", "delivered"]
    api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "2", "text": "t"})
    page = api.call.get(f"/api/v1/boxes/{api.box.address}/messages", {"folder": "sent", "limit": 1})
    assert page.status_code == 200
    first = page.json()["results"][0]
    raw = api.call.get(first["raw_url"])
    assert raw.status_code == 200 and raw["Content-Type"] == "message/rfc822"
    assert sent["message_id"].encode() in b"".join(raw.streaming_content)
    second = api.call.get(
        f"/api/v1/boxes/{api.box.address}/messages",
        {"folder": "sent", "limit": 1, "cursor": page.json()["next_cursor"]},
    )
    assert second.json()["results"][0]["id"] > first["id"]


def test_webhook_disabled_after_repeated_failures(transactional_db, cast, api, settings):
    failing = Receiver(fail=True)
    settings.API_WEBHOOK_MAX_FAILURES = 3
    settings.API_WEBHOOK_BACKOFF_SECONDS = 0
    ApiKey.objects.filter(pk=api.key.pk).update(webhook_url=failing.url)
    for n in range(3):
        api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": f"m{n}", "text": "t"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        webhooks.sweep()
        api.key.refresh_from_db()
        if not api.key.webhook_enabled:
            break
        time.sleep(0.05)
    failing.server.shutdown()
    assert not api.key.webhook_enabled
    assert "échecs consécutifs" in api.key.webhook_disabled_reason and "500" in api.key.webhook_disabled_reason
    assert WebhookDelivery.objects.filter(status="failed").exists()


def test_webhooks_on_read_and_bounced(transactional_db, cast, api, receiver, client):
    from mailboxes.models import Entry
    from patients.models import Patient

    ApiKey.objects.filter(pk=api.key.pk).update(webhook_url=receiver.url)
    api.key.refresh_from_db()
    Patient.objects.filter(pk=cast.pauline_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    paul_message = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address], "subject": "s", "text": "t", "request_read_receipt": True}
    ).json()
    # Pauline closed her space: refused in a message that also reaches Alice (a returned delivery).
    api.call.post(
        "/api/v1/messages", {"to": [cast.alice_box.address, cast.pauline_box.address], "subject": "s", "text": "t"}
    )
    # Paul opens the message in his space: his MDN comes back to the DPI's box.
    entry = Entry.objects.get(mailbox=cast.paul_box, message_id=paul_message["id"])
    client.force_login(cast.paul)
    assert client.get(f"/patient/message/{entry.pk}/").status_code == 200
    deadline = time.monotonic() + 10
    events = {}
    while time.monotonic() < deadline and not {"message.read", "message.bounced"} <= set(events):
        events = {json.loads(body)["event"]: (headers, body) for headers, body in list(receiver.received)}
        time.sleep(0.05)
    assert {"message.delivered", "message.read", "message.bounced"} <= set(events)
    for headers, body in events.values():
        check_signature(api.key.webhook_secret, headers, body)
    bounced = json.loads(events["message.bounced"][1])["data"]
    assert bounced["recipient"] == cast.pauline_box.address and bounced["code"] == "space_closed"
    read = json.loads(events["message.read"][1])["data"]
    assert read["recipient"] == cast.paul_box.address and read["message"] == paul_message["id"]


def test_a_send_asks_the_hooks_no_query_the_key_answered(transactional_db, cast, api, receiver):
    """The key's query says whether a key of its box has a webhook: after the delivery, the hooks
    read no sending box (api/hooks.py `sender_known`). A webhook on another key of the same box
    is still called, and one set between two calls is called from the next one."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.api.conftest import make_key

    def send(subject):
        with CaptureQueriesContext(connection) as queries:
            response = api.call.post(
                "/api/v1/messages", {"to": [cast.paul_box.address], "subject": subject, "text": "B"}
            )
        assert response.status_code == 201, response.content
        statements = [q["sql"] for q in queries.captured_queries]
        assert not [s for s in statements if "sender_mailbox_id" in s and ApiKey._meta.db_table in s], statements
        return response.json()["id"]

    send("Sans webhook")
    assert not WebhookDelivery.objects.exists()
    other, _secret = make_key(api.box, name="SIL")
    ApiKey.objects.filter(pk=other.pk).update(webhook_url=receiver.url)
    message = send("Avec le webhook d'une autre clé")
    (delivered,) = receiver.wait_for(1)
    payload = json.loads(delivered[1])
    assert payload["event"] == "message.delivered" and payload["data"]["message"] == message
    assert WebhookDelivery.objects.get().api_key_id == other.pk


def test_the_dpi_answers_a_patient_reply_that_arrived_in_the_return_box(transactional_db, cast, api):
    """The key of the applicative box reads its paired return box: a patient's reply there can
    be answered (`in_reply_to` its Message-ID), which threads the answer and marks the return
    box's entry answered. A message of a box the key does not reach stays unknown."""
    from mailboxes.models import Entry

    sent = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address], "subject": "Pré-admission", "text": "Répondez."}
    ).json()
    answer = patient_reply(cast, sent)
    in_return_box = Entry.objects.get(mailbox=cast.cardio, message=answer)
    assert not in_return_box.answered

    again = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.paul_box.address],
            "subject": "RE : Pré-admission",
            "text": "Bien reçu.",
            "in_reply_to": answer.message_id,
        },
    )
    assert again.status_code == 201, again.content
    assert Message.objects.get(pk=again.json()["id"]).in_reply_to == answer.message_id
    in_return_box.refresh_from_db()
    assert in_return_box.answered

    elsewhere = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Autre", text="x", source="webmail"
    ).message
    refused = api.call.post(
        "/api/v1/messages",
        {"to": [cast.paul_box.address], "subject": "x", "text": "x", "in_reply_to": elsewhere.message_id},
    )
    assert refused.status_code == 422 and refused.json()["code"] == "in_reply_to_unknown"


def test_a_reply_to_a_message_split_per_patient_is_matched_to_that_patient_s_copy(transactional_db, cast, api):
    """Practice software sends one message to two patients from the applicative box (SMTP
    submission, `deliver_one_per_patient`): two stored copies with its one Message-ID. Paul's
    reply is matched to the copy Paul got, not to the latest copy of that Message-ID."""
    from mailboxes.fanout import deliver_one_per_patient
    from tests.clients.conftest import build

    paul, pauline = cast.paul_patient.address, cast.pauline_patient.address
    raw = build(api.box.address, [paul, pauline], subject="Convocation", message_id="<conv-1@ch-troispics>")
    outcome = deliver_one_per_patient(
        raw, envelope_from=api.box.address, envelope_to=[paul, pauline], source="submission", sender_mailbox=api.box
    )
    paul_copy, pauline_copy = (result.message for result in outcome.results)
    assert [r["address"] for r in paul_copy.to] == [paul] and [r["address"] for r in pauline_copy.to] == [pauline]
    patient_reply(cast, {"id": paul_copy.pk})
    reply = ReturnReply.objects.get()
    assert (reply.original, reply.matched_by, reply.patient) == (paul_copy, "in_reply_to", cast.paul_patient)
