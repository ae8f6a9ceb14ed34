"""Keys, scopes, isolation and every refusal as problem details (issue 10 §1–2)."""

import pytest

from api.problems import CATALOGUE
from mailboxes.models import Message
from tests.api.conftest import make_key


def problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"urn:mssante:api:problem:{code}" and body["code"] == code
    assert body["title"] == CATALOGUE[code].title and body["title_en"] == CATALOGUE[code].title_en
    assert body["status"] == status and body["detail"]
    return body


def test_no_key_bad_key_revoked_key(cast, api, client_for):
    problem(client_for(None).get(f"/api/v1/boxes/{api.box.address}/messages"), 401, "not_authenticated")
    problem(client_for("mss_000000000000_nope").get(f"/api/v1/boxes/{api.box.address}/messages"), 401, "invalid_key")
    assert api.call.get(f"/api/v1/boxes/{api.box.address}/messages").status_code == 200
    api.key.revoke()  # as the admin action does: refused at the very next call
    problem(api.call.get(f"/api/v1/boxes/{api.box.address}/messages"), 401, "key_revoked")


def test_revoke_from_admin_action(cast, api, client):
    client.force_login(cast.ada)
    response = client.post(
        "/admin/api/apikey/", {"action": "revoke_keys", "_selected_action": [api.key.pk]}, follow=True
    )
    assert response.status_code == 200
    problem(api.call.get(f"/api/v1/boxes/{api.box.address}/messages"), 401, "key_revoked")


def test_admin_shows_key_once_and_stores_hash(cast, app_box, client):
    from api.models import ApiKey

    client.force_login(cast.ada)
    response = client.post(
        "/admin/api/apikey/add/",
        {
            "mailbox": app_box.pk,
            "name": "SIL",
            "can_send": "on",
            "can_read": "on",
            "allowed_ips": "",
            "rate_per_minute": 0,
        },
    )
    assert response.status_code == 200, response.content[:2000]
    key = ApiKey.objects.get(name="SIL")
    text = response.content.decode()
    secret = text.split('id="api-key" type="text" readonly size="70" value="')[1].split('"')[0]
    assert secret.startswith(f"mss_{key.prefix}_") and secret not in str(ApiKey.objects.values().get())
    assert client.get(f"/admin/api/apikey/{key.pk}/change/").content.decode().count(secret) == 0


def test_scopes(cast, app_box, client_for):
    _, read_only = make_key(app_box, can_send=False)
    problem(
        client_for(read_only).post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "x", "text": "x"}),
        403,
        "scope_missing",
    )
    _, send_only = make_key(app_box, name="send", can_read=False)
    problem(client_for(send_only).get(f"/api/v1/boxes/{app_box.address}/messages"), 403, "scope_missing")


def test_ip_allow_list_and_client_certificate(cast, app_box, client_for, settings):
    _, secret = make_key(app_box, allowed_ips="10.0.0.0/8")
    problem(client_for(secret).get(f"/api/v1/boxes/{app_box.address}/messages"), 403, "ip_not_allowed")
    settings.API_CLIENT_CERT_HEADER = "X-SSL-Client-SHA256"
    _, bound = make_key(app_box, name="mtls", client_cert_fingerprint="AB:CD:EF")
    problem(client_for(bound).get(f"/api/v1/boxes/{app_box.address}/messages"), 403, "certificate_required")
    ok = client_for(bound).get(f"/api/v1/boxes/{app_box.address}/messages", headers={"X-SSL-Client-SHA256": "abcdef"})
    assert ok.status_code == 200
    # The certificate alone stands for its key.
    alone = client_for(None).get(
        f"/api/v1/boxes/{app_box.address}/messages", headers={"X-SSL-Client-SHA256": "ab:cd:ef"}
    )
    assert alone.status_code == 200


def test_key_of_box_a_gets_404_on_box_b(cast, api, client_for):
    sent = api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "s", "text": "t"}).json()
    _, other = make_key(cast.cardio, name="autre service")  # the return box's own key
    b = client_for(other)
    problem(b.get(f"/api/v1/boxes/{api.box.address}/messages"), 404, "not_found")
    problem(b.get(f"/api/v1/boxes/{cast.alice_box.address}/messages"), 404, "not_found")
    problem(b.get(f"/api/v1/messages/{sent['id']}"), 404, "not_found")
    problem(b.get(f"/api/v1/messages/{sent['id'] + 1000}"), 404, "not_found")


def test_validation_and_refusals(cast, api, settings):
    body = problem(
        api.call.post("/api/v1/messages", {"to": ["pas une adresse"], "subject": "", "text": ""}),
        422,
        "validation_error",
    )
    assert "to" in body["errors"]
    # A lone surrogate (valid JSON escape, not encodable text) is refused before any send.
    body = problem(
        api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "s", "text": "a\ud800b"}),
        422,
        "validation_error",
    )
    assert "U+D800" in str(body["errors"]["text"])
    refused = problem(
        api.call.post("/api/v1/messages", {"to": ["x@inconnu.mssante.fr"], "subject": "s", "text": "t"}),
        422,
        "untrusted_domain",
    )
    assert refused["recipients"][0]["code"] == "untrusted_domain"
    problem(
        api.call.post("/api/v1/messages", {"to": ["nobody@ch-troispics.mssante.fr"], "subject": "s", "text": "t"}),
        422,
        "unknown_recipient",
    )
    problem(
        api.call.post("/api/v1/messages", {"to": [f"{'1' * 15}@patient.mssante.fr"], "subject": "s", "text": "t"}),
        422,
        "wrong_ins",
    )
    settings.MAILBOX_MAX_MESSAGE_BYTES = 2000
    api.box.max_message_bytes = 2000
    api.box.save()
    problem(
        api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "s", "text": "x" * 5000}),
        413,
        "too_large",
    )
    settings.API_MAX_REQUEST_BYTES = 100
    problem(
        api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "s", "text": "x" * 500}),
        413,
        "request_too_large",
    )


def test_partial_refusal_is_201_with_outcomes(cast, api):
    response = api.call.post(
        "/api/v1/messages", {"to": [cast.alice_box.address, "x@inconnu.mssante.fr"], "subject": "s", "text": "t"}
    )
    assert response.status_code == 201
    outcomes = {r["address"]: r for r in response.json()["recipients"]}
    assert outcomes[cast.alice_box.address]["outcome"] == "delivered"
    refused = outcomes["x@inconnu.mssante.fr"]
    assert (
        refused["outcome"] == "refused" and refused["code"] == "untrusted_domain" and "confiance" in refused["reason"]
    )


def test_rate_limit_429_with_retry_after(cast, app_box, client_for):
    _, secret = make_key(app_box, rate_per_minute=3)
    c = client_for(secret)
    statuses = [c.get(f"/api/v1/boxes/{app_box.address}/messages").status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    response = c.get(f"/api/v1/boxes/{app_box.address}/messages")
    problem(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.mark.parametrize("path", ["/api/v1/messages/abc", "/api/v1/boxes/x/replies/1/filed"])
def test_unknown_paths_and_methods(cast, api, path):
    response = api.call.get(path)
    assert response.status_code in (404, 405)


def test_a_client_accepting_only_problem_details_reads_its_errors(cast, api, client_for):
    """`Accept: application/problem+json` alone: the errors found before the call acts (no key,
    unknown key, scope) come as what they are, in the accepted problem format; a call that would
    answer JSON is a 406 before it acts (nothing sent)."""
    only = {"Accept": "application/problem+json"}
    listing = f"/api/v1/boxes/{api.box.address}/messages"
    problem(client_for(None).get(listing, headers=only), 401, "not_authenticated")
    problem(client_for("mss_000000000000_nope").get(listing, headers=only), 401, "invalid_key")
    _key, reader = make_key(api.box, name="lecteur", can_send=False)
    message = {"to": [cast.paul_box.address], "subject": "Bonjour", "text": "Bonjour"}
    problem(client_for(reader).post("/api/v1/messages", message, headers=only), 403, "scope_missing")
    problem(api.call.get(listing, headers=only), 406, "not_acceptable")
    problem(api.call.post("/api/v1/messages", message, headers=only), 406, "not_acceptable")
    assert not Message.objects.filter(subject="Bonjour").exists()
    # A media type the API never answers in stays a 406 for everything, saying what to accept.
    refused = problem(client_for(None).get(listing, headers={"Accept": "application/xml"}), 406, "not_acceptable")
    assert "application/json" in refused["detail"]
    assert api.call.get(listing, headers={"Accept": "application/json"}).status_code == 200


def test_an_unknown_folder_is_refused_with_the_accepted_values(cast, api):
    """`folder=INBOX` or `folder=Sent` is neither a role nor a folder of the box: a 422 naming
    `folder` and what it takes, not an empty page while `folder=sent` has messages."""
    from mailboxes.models import Folder

    Folder.objects.create(mailbox=api.box, role=Folder.Role.USER, name="Comptes rendus", position=9)
    sent = api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "1", "text": "t"})
    assert sent.status_code == 201, sent.content
    url = f"/api/v1/boxes/{api.box.address}/messages"
    assert len(api.call.get(url, {"folder": "sent"}).json()["results"]) == 1
    assert api.call.get(url, {"folder": "Comptes rendus"}).json()["results"] == []
    for typo in ("INBOX", "Sent", "comptes rendus"):
        body = problem(api.call.get(url, {"folder": typo}), 422, "validation_error")
        (message,) = body["errors"]["folder"]
        for accepted in ("inbox", "sent", "drafts", "archive", "trash", "user", "« Comptes rendus »"):
            assert accepted in message, (typo, message)
        assert body["detail"].startswith("folder : Dossier « ") and typo in body["detail"]


def test_folder_user_lists_every_personal_folder_and_is_named_where_the_roles_are(cast, api, client):
    """`folder=user` is a role the listing takes (the box's personal folders together): the
    422 text and the served OpenAPI document name it with the other roles, from one list."""
    from api.views import FOLDER_ROLES
    from mailboxes.models import Entry, Folder

    assert set(FOLDER_ROLES) == {"inbox", "sent", "drafts", "archive", "trash", "user"}
    reports = Folder.objects.create(mailbox=api.box, role=Folder.Role.USER, name="Comptes rendus", position=9)
    letters = Folder.objects.create(mailbox=api.box, role=Folder.Role.USER, name="Courriers", position=10)
    ids = []
    for folder in (reports, letters, None):
        sent = api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "1", "text": "t"})
        assert sent.status_code == 201, sent.content
        entry = Entry.objects.get(mailbox=api.box, message_id=sent.json()["id"])
        if folder:  # filed by hand, as the webmail's « Déplacer » does
            Entry.objects.filter(pk=entry.pk).update(folder=folder)
            ids.append(entry.pk)
    url = f"/api/v1/boxes/{api.box.address}/messages"
    page = api.call.get(url, {"folder": "user"})
    assert page.status_code == 200, page.content
    assert [r["id"] for r in page.json()["results"]] == ids
    assert [r["folder"] for r in page.json()["results"]] == ["Comptes rendus", "Courriers"]

    (message,) = problem(api.call.get(url, {"folder": "User"}), 422, "validation_error")["errors"]["folder"]
    for role in FOLDER_ROLES:
        assert f" {role}" in message, (role, message)
    assert "user (tous les dossiers personnels)" in message
    assert "« Comptes rendus », « Courriers »" in message

    document = client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/boxes/{box}/messages"]["get"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "folder"]
    roles, any_name = parameter["schema"]["anyOf"]
    assert roles["enum"] == list(FOLDER_ROLES) and any_name["type"] == "string"
    for role in FOLDER_ROLES:
        assert role in parameter["description"], role


@pytest.mark.parametrize("limit", ["0", "-1", "201", "500", "abc", ""])
def test_a_limit_out_of_range_is_refused_like_a_non_integer(cast, api, limit):
    for url in (f"/api/v1/boxes/{api.box.address}/messages", f"/api/v1/boxes/{cast.cardio.address}/replies"):
        body = problem(api.call.get(url, {"limit": limit}), 422, "validation_error")
        assert body["errors"] == {"limit": ["Un entier de 1 à 200."]}
        assert body["detail"] == "limit : Un entier de 1 à 200."
    for limit in ("1", "200"):
        assert api.call.get(f"/api/v1/boxes/{api.box.address}/messages", {"limit": limit}).status_code == 200


def test_a_validation_problem_says_what_is_wrong_in_its_detail(cast, api):
    """Not only the title « Requête invalide »: the first field and its message, the others named."""
    body = problem(api.call.post("/api/v1/messages", {"subject": "x"}), 422, "validation_error")
    assert body["detail"] != body["title"]
    first = next(iter(body["errors"]))
    assert body["detail"].startswith(f"{first} : {body['errors'][first][0]}")
    unknown = problem(
        api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "model": 999999}), 422, "validation_error"
    )
    assert unknown["detail"] == "model : Aucun modèle actif de cette boîte porte cet id."
    cursor = problem(
        api.call.get(f"/api/v1/boxes/{api.box.address}/messages", {"cursor": "!!"}), 422, "validation_error"
    )
    assert cursor["detail"] == "cursor : Curseur invalide."
