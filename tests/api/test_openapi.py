"""The OpenAPI document (issue 10 §1): served at a stable URL, valid OpenAPI 3, every
documented endpoint exercised and its answers checked against the document; the reference page
is served from our own static files; one test drives the API with real curl on loopback."""

import json
import re
import subprocess

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from mailboxes.compose import send_from_mailbox


@pytest.fixture
def document(client, db):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def inline(node, components):
    """The schema with its $refs replaced by their components (the API's have no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inline(components[node["$ref"].rsplit("/", 1)[1]], components)
        return {k: inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(v, components) for v in node]
    return node


def test_document_is_valid_openapi_3(document):
    assert document["openapi"].startswith("3.")
    validate(document)


def test_reference_page_from_own_static_files(client, db):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert "<style" not in html and "<script>" not in html  # nothing inline: CSP allows 'self' only
    scripts = re.findall(r'src="([^"]+)"', html)
    assert scripts and all(src.startswith("/") for src in scripts)
    from django.conf import settings
    from django.contrib.staticfiles import finders

    # Our static files (collectstatic serves them in production; the test runs without it).
    for src in scripts:
        path = src.split("?")[0]
        if path.startswith(settings.STATIC_URL):
            assert finders.find(path.removeprefix(settings.STATIC_URL)), src
        else:
            assert client.get(src).status_code == 200, src


def test_every_documented_endpoint_answers_as_documented(transactional_db, cast, api, document):
    components = document["components"]["schemas"]
    called = set()

    def check(method, template, response):
        operation = document["paths"][template][method]
        documented = operation["responses"]
        assert str(response.status_code) in documented, (template, response.status_code)
        content = documented[str(response.status_code)].get("content", {})
        kind = response["Content-Type"].split(";")[0]
        # The answer's media type is the documented one (a client picks its parser by it).
        assert kind in content or "*/*" in content, (template, response.status_code, kind, list(content))
        if kind in ("application/json", "application/problem+json"):
            schema = content[kind]["schema"]
            OAS30Validator(inline(schema, components)).validate(response.json())
        called.add((method, template))
        return response

    box, reply_box = api.box.address, cast.cardio.address
    sent = check(
        "post",
        "/api/v1/messages",
        api.call.post(
            "/api/v1/messages",
            {"to": [cast.paul_box.address, "x@inconnu.mssante.fr"], "subject": "Examen", "text": "t"},
        ),
    ).json()
    check(
        "post",
        "/api/v1/messages",
        api.call.post("/api/v1/messages", {"to": ["x@inconnu.mssante.fr"], "subject": "s", "text": "t"}),
    )
    check("get", "/api/v1/messages/{message_id}", api.call.get(f"/api/v1/messages/{sent['id']}"))
    check("get", "/api/v1/messages/{message_id}", api.call.get("/api/v1/messages/999999"))
    from mailboxes.models import Message

    send_from_mailbox(
        cast.paul_box,
        cast.paul,
        to=[reply_box],
        subject="RE",
        text="ok",
        in_reply_to=Message.objects.get(pk=sent["id"]),
        attachments=[("a.pdf", "application/pdf", b"%PDF-1.4\n")],
        source="patient",
    )
    page = check("get", "/api/v1/boxes/{box}/messages", api.call.get(f"/api/v1/boxes/{reply_box}/messages")).json()
    entry = page["results"][0]
    check("get", "/api/v1/boxes/{box}/messages/{entry_id}/raw", api.call.get(entry["raw_url"]))
    check(
        "get",
        "/api/v1/boxes/{box}/messages/{entry_id}/attachments/{attachment_id}",
        api.call.get(entry["attachments"][0]["url"]),
    )
    replies = check("get", "/api/v1/boxes/{box}/replies", api.call.get(f"/api/v1/boxes/{reply_box}/replies")).json()
    check(
        "post",
        "/api/v1/boxes/{box}/replies/{reply_id}/filed",
        api.call.post(f"/api/v1/boxes/{reply_box}/replies/{replies['results'][0]['id']}/filed", {"note": "ok"}),
    )
    check("get", "/api/v1/boxes/{box}/messages", api.call.get(f"/api/v1/boxes/{box}/messages", {"since": "hier"}))
    documented = {
        (m, p) for p, item in document["paths"].items() for m in item if m in ("get", "post", "put", "patch", "delete")
    }
    assert called == documented


def test_every_error_is_documented_as_problem_json(document):
    """Every error answer is served as `application/problem+json` (api/problems.py): the
    document says so, with the Problem schema, for every operation; and every operation names
    the errors any call may get (no key, scope, not found, Accept, rate)."""
    for template, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"401", "403", "404", "406", "429"} <= set(responses), (method, template)
            for code, response in responses.items():
                if int(code) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, template, code)
                    assert response["content"]["application/problem+json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"
                    }


def test_curl_against_live_server(transactional_db, cast, api, live_server):
    body = json.dumps({"to": [cast.alice_box.address], "subject": "Par curl", "text": "Bonjour."})
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            f"{live_server.url}/api/v1/messages",
            "-H",
            f"Authorization: Bearer {api.secret}",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Idempotency-Key: curl-1",
            "--data-binary",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    payload, code = out.rsplit("\n", 1)
    assert code == "201", payload
    sent = json.loads(payload)
    assert sent["recipients"] == [
        {
            "address": cast.alice_box.address,
            "outcome": "delivered",
            "message": sent["id"],
            "message_id": sent["message_id"],
        }
    ]
    status = subprocess.run(
        ["curl", "-sS", "-H", f"Authorization: Bearer {api.secret}", f"{live_server.url}/api/v1/messages/{sent['id']}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert json.loads(status)["recipients"][0]["status"] == "delivered"


def test_the_message_fields_are_new_for_each_serializer_and_documented_in_order(document):
    """`MessageIn` builds its fields per serializer instead of DRF's deep copy of declared
    fields: no field is shared between two calls, and the document is what it was."""
    from api.serializers import MessageIn

    first, second = MessageIn(data={}).fields, MessageIn(data={}).fields
    names = ["to", "cc", "subject", "text", "html", "attachments", "files"]
    names += ["request_read_receipt", "in_reply_to", "model", "fields"]
    assert list(first) == names
    assert all(first[name] is not second[name] and first[name].parent is not second[name].parent for name in names)
    request = document["components"]["schemas"]["MessageInRequest"]
    assert list(request["properties"]) == names and request["required"] == ["to"]
    assert request["properties"]["subject"]["maxLength"] == 900
