"""The API driven as a DPI vendor's client and an attacker would drive it (issue 10, review from
outside): awkward bodies, headers and paths answer problem details, never a 500 or an HTML page,
and refuse before anything is sent."""

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from mailboxes.models import Message
from tests.api.conftest import make_key
from tests.api.test_access_and_errors import problem


def send(api, **fields):
    return api.call.post("/api/v1/messages", {"subject": "Compte rendu", "text": "Bonjour", **fields})


@pytest.mark.parametrize(
    "attachment, field",
    [
        ({"filename": "cr\r\nContent-Type: text/html\r\n\r\n<script>.pdf"}, "filename"),
        ({"filename": "cr\x00.pdf"}, "filename"),
        ({"filename": "../"}, "filename"),
        ({"filename": "cr.pdf", "content_type": "application/pdf\r\nX-Injected: 1"}, "content_type"),
        ({"filename": "cr.pdf", "content_type": 'text/plain; name="a\r\nb"'}, "content_type"),
        ({"filename": "cr.pdf", "content_type": "pdf"}, "content_type"),
        ({"filename": "cr.pdf", "content_type": "é/ü"}, "content_type"),
    ],
)
def test_an_attachment_name_or_type_that_would_break_its_header_is_422(cast, api, attachment, field):
    """They go into the attachment's MIME headers: a line break there was a 500 (the message
    writer refuses it), after the call had claimed its Idempotency-Key."""
    response = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.paul_box.address],
            "subject": "PJ",
            "text": "Bonjour",
            "attachments": [{"content_base64": "JVBERi0xLjQK", **attachment}],
        },
        headers={"Idempotency-Key": "pj-1"},
    )
    body = problem(response, 422, "validation_error")
    assert list(body["errors"]["attachments"]["0"]) == [field]
    assert not Message.objects.filter(subject="PJ").exists()


@pytest.mark.parametrize(
    "filename, kept", [("../../etc/passwd", "passwd"), ("C:\\Dossiers\\cr.pdf", "cr.pdf"), ("cr.pdf", "cr.pdf")]
)
def test_an_attachment_name_loses_its_path_as_a_multipart_upload_does(cast, api, filename, kept):
    response = send(
        api,
        to=[cast.paul_box.address],
        attachments=[{"filename": filename, "content_type": "application/pdf", "content_base64": "JVBERi0xLjQK"}],
    )
    assert response.status_code == 201, response.content
    message = Message.objects.get(pk=response.json()["id"])
    raw = default_storage.open(message.raw.name).read()
    assert f'Content-Disposition: attachment; filename="{kept}"'.encode() in raw
    assert message.attachments.get().filename == kept


@pytest.mark.parametrize("field, value", [("to", False), ("to", 5), ("cc", False), ("cc", 3.5), ("to", {"a": 1})])
def test_an_address_list_that_is_no_list_is_422(cast, api, field, value):
    """`{"cc": false}` was a 500 (the list field iterated a bool)."""
    body = {"to": [cast.paul_box.address], field: value}
    answer = problem(send(api, **body), 422, "validation_error")
    assert field in answer["errors"]
    assert not Message.objects.exists()


@pytest.mark.parametrize("since", ["2026-13-45T00:00:00", "2026-02-30T10:00:00", "2026-01-01T00:00:00+99:00"])
def test_a_well_formed_but_impossible_since_is_422(cast, api, since):
    body = problem(api.call.get(f"/api/v1/boxes/{api.box.address}/messages", {"since": since}), 422, "validation_error")
    assert list(body["errors"]) == ["since"]


def test_a_nul_in_a_box_name_is_404_as_any_unknown_box_and_in_a_folder_422(cast, api):
    """PostgreSQL takes no NUL in text: these were 500s there."""
    unknown = problem(api.call.get("/api/v1/boxes/nobody@nowhere.fr/messages"), 404, "not_found")
    for path in ["/api/v1/boxes/a%00b/messages", "/api/v1/boxes/a%00b/replies", "/api/v1/boxes/%C2%B2/messages"]:
        assert problem(api.call.get(path), 404, "not_found") == unknown, path
    body = problem(
        api.call.get(f"/api/v1/boxes/{api.box.address}/messages", {"folder": "in\x00box"}), 422, "validation_error"
    )
    assert list(body["errors"]) == ["folder"]


def test_a_box_named_by_a_non_ascii_digit_is_404(cast, api):
    """ "²".isdigit() is true and int("²") fails: that was a 500."""
    assert api.call.get(f"/api/v1/boxes/{api.box.pk}/messages").status_code == 200
    problem(api.call.get("/api/v1/boxes/²/messages"), 404, "not_found")


def test_a_replayed_refusal_is_still_a_problem(cast, api):
    """The first answer again, as it was served: a problem stays application/problem+json."""
    call = {"to": ["x@inconnu.fr"], "subject": "s", "text": "t"}
    first = api.call.post("/api/v1/messages", call, headers={"Idempotency-Key": "refus-1"})
    body = problem(first, 422, "untrusted_domain")
    again = api.call.post("/api/v1/messages", call, headers={"Idempotency-Key": "refus-1"})
    assert again["Idempotent-Replayed"] == "true"
    assert problem(again, 422, "untrusted_domain") == body


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/v1/messages/"),
        ("post", "/api/v1/messages/"),
        ("get", "/api/v1/messages/abc"),
        ("get", "/api/v1/messages/1/"),
        ("get", "/api/v1/boxes/x/messages/"),
        ("get", "/api/v1/boxes/x/messages/null,null/raw"),
        ("post", "/api/v1/boxes/x/replies/abc/filed"),
        ("get", "/api/v1/nothing-here"),
        ("get", "/api/v2/messages"),
    ],
)
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_path_no_route_matches_is_a_problem_404(cast, api, method, path, debug, settings):
    """A trailing slash, an id that is no number: Django's HTML page was served under /api/ —
    and still was with DEBUG on, where Django's debug page never calls handler404."""
    settings.DEBUG = debug
    response = getattr(api.call.client, method)(path, **api.call.headers())
    problem(response, 404, "not_found")
    assert b"<html" not in response.content.lower()


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_post_to_no_route_without_a_csrf_token_is_the_same_problem(cast, api, debug, settings):
    """A client that enforces nothing of CSRF (an API client) on a wrong path: the 404 problem,
    not Django's 403 CSRF page."""
    settings.DEBUG = debug
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/v1/messages/", {}, content_type="application/json", **api.call.headers())
    problem(response, 404, "not_found")


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_pages_outside_the_api_keep_django_s_404(client, db, debug, settings):
    settings.DEBUG = debug
    for path in ("/pro/nothing-here-either", "/apinothing", "/pro/api/v1/messages"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("text/html"), path
    # The API's root without its slash is sent to the API's root, which is a problem like any
    # other path of the API that no route matches.
    response = client.get("/api", follow=True)
    assert response.redirect_chain == [("/api/", 301)]
    problem(response, 404, "not_found")


def test_an_unexpected_error_under_the_api_is_a_problem_500(cast, api, monkeypatch):
    """Django logs it as it logs any 500; the client gets a problem, not the HTML page."""

    def broken(message):
        raise RuntimeError("boom")

    monkeypatch.setattr("api.views.message_status", broken)
    sent = send(api, to=[cast.paul_box.address]).json()
    client = Client(raise_request_exception=False)
    response = client.get(f"/api/v1/messages/{sent['id']}", **api.call.headers())
    body = problem(response, 500, "server_error")
    assert "boom" not in body["detail"]


def test_json_nested_too_deep_is_422_not_a_500(cast, api):
    body = '{"to": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.call.client.post("/api/v1/messages", body, content_type="application/json", **api.call.headers())
    assert problem(response, 422, "validation_error")["detail"].startswith("Corps JSON illisible")


def test_unreadable_json_is_explained_in_french(cast, api):
    response = api.call.client.post("/api/v1/messages", "{bad", content_type="application/json", **api.call.headers())
    detail = problem(response, 422, "validation_error")["detail"]
    assert detail.startswith("Corps JSON illisible : ") and "JSON parse error" not in detail


def test_a_chunked_body_without_length_is_411(cast, api):
    """Django reads CONTENT_LENGTH bytes of a body: one sent in chunks without it arrived
    empty, and the answer was a misleading « to: champ obligatoire »."""
    response = api.call.client.post(
        "/api/v1/messages",
        {"to": [cast.paul_box.address], "subject": "s", "text": "t"},
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
        **api.call.headers(),
    )
    problem(response, 411, "length_required")
    assert not Message.objects.exists()


def test_the_reference_page_answers_other_methods_with_a_problem(client, db):
    assert client.get("/api/v1/docs").status_code == 200
    assert client.head("/api/v1/docs").status_code == 200
    for method in ("options", "put", "post", "delete"):
        response = getattr(client, method)("/api/v1/docs")
        problem(response, 405, "method_not_allowed")
        assert response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("fields", [{"nom": {"a": 1}}, {"nom": [1]}, {"nom": None}])
def test_model_field_values_are_texts(cast, api, fields):
    """A nested value went into the message as a Python repr ("{'a': 1}")."""
    body = problem(send(api, to=[cast.paul_box.address], fields=fields), 422, "validation_error")
    assert list(body["errors"]) == ["fields"]


def test_model_fields_documented_as_an_object_of_texts(client, db):
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["MessageInRequest"]
    assert schema["properties"]["fields"]["type"] == "object"
    assert schema["properties"]["fields"]["additionalProperties"] == {"type": "string"}


def test_a_certificate_that_several_keys_hold_does_not_stand_for_one_of_them(cast, app_box, client_for, settings):
    """One DPI installation, one client certificate, a key for each of two boxes: the
    certificate alone picked whichever key sorted first, maybe the other box's."""
    settings.API_CLIENT_CERT_HEADER = "X-SSL-Client-SHA256"
    _, first = make_key(app_box, name="DPI urgences", client_cert_fingerprint="AB:CD:EF")
    _, second = make_key(cast.cardio, name="DPI cardiologie", client_cert_fingerprint="abcdef")
    certificate = {"X-SSL-Client-SHA256": "ab:cd:ef"}
    for box in (app_box, cast.cardio):
        alone = client_for(None).get(f"/api/v1/boxes/{box.address}/messages", headers=certificate)
        assert problem(alone, 401, "invalid_key")["detail"].startswith("Plusieurs clés")
    # With its key, each call reaches that key's box.
    assert (
        client_for(second).get(f"/api/v1/boxes/{cast.cardio.address}/messages", headers=certificate).status_code == 200
    )
    problem(client_for(second).get(f"/api/v1/boxes/{app_box.address}/messages", headers=certificate), 404, "not_found")
    assert client_for(first).get(f"/api/v1/boxes/{app_box.address}/messages", headers=certificate).status_code == 200


def test_a_head_of_a_raw_message_or_attachment_records_no_download(cast, api):
    """HEAD answers the headers of GET (size, name) but nothing is exported or downloaded: the
    audit trail said so for every HEAD."""
    from audit.models import AuditEvent

    sent = send(
        api,
        to=[cast.paul_box.address],
        attachments=[{"filename": "cr.pdf", "content_type": "application/pdf", "content_base64": "JVBERi0xLjQK"}],
    ).json()
    entry = api.call.get(f"/api/v1/boxes/{api.box.address}/messages").json()["results"][-1]
    assert entry["message"] == sent["id"]
    watched = [AuditEvent.Action.EXPORTED, AuditEvent.Action.DOWNLOADED]
    for url in (entry["raw_url"], entry["attachments"][0]["url"]):
        head = api.call.client.head(url, **api.call.headers())
        got = api.call.get(url)
        assert head.status_code == got.status_code == 200
        for name in ("Content-Type", "Content-Length", "Content-Disposition"):
            assert head[name] == got[name], name
    events = list(AuditEvent.objects.filter(action__in=watched).values_list("action", flat=True).order_by("id"))
    assert events == watched  # one each, for the GETs
    calls = AuditEvent.objects.filter(action="api.call", detail__method="HEAD")
    assert calls.count() == 2


def test_a_call_while_the_first_of_its_key_runs_is_told_when_to_retry(cast, api):
    """`409 idempotency_in_progress` says when to come back, as 429 and 503 do."""
    from api.models import IdempotencyRecord

    call = {"to": [cast.paul_box.address], "subject": "s", "text": "t"}
    assert api.call.post("/api/v1/messages", call, headers={"Idempotency-Key": "k"}).status_code == 201
    IdempotencyRecord.objects.update(status_code=None, response=None)  # as while the first call runs
    response = api.call.post("/api/v1/messages", call, headers={"Idempotency-Key": "k"})
    problem(response, 409, "idempotency_in_progress")
    assert response["Retry-After"] == "1"
    assert Message.objects.filter(subject="s").count() == 1
