"""Requests malformed below the JSON (a Content-Length that is no number, a form of thousands of
fields or files, a Host this server does not answer), sent over a real socket to the live
server as a careless or hostile client sends them: each is a problem, never a 500 or Django's
HTML page, and nothing is sent."""

import http.client
import json
from urllib.parse import urlsplit

import pytest
import requests

from api.problems import CATALOGUE
from mailboxes.models import Message


def raw_call(live_server, method: str, path: str, headers: dict, body: bytes = b""):
    """One request written by hand: http.client sends the headers as given (no Content-Length
    of its own when one is given)."""
    url = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def assert_problem(status, content_type, body, expected_status, code):
    assert (status, content_type) == (expected_status, "application/problem+json"), body[:300]
    answer = json.loads(body)
    assert answer["code"] == code and answer["status"] == expected_status
    assert answer["type"] == f"urn:mssante:api:problem:{code}" and answer["title"] == CATALOGUE[code].title
    return answer


@pytest.mark.parametrize("length", ["abc", "1e3", "0x10", "-5"])
def test_a_content_length_that_is_no_number_is_a_400_problem(transactional_db, cast, api, live_server, length):
    """`int(CONTENT_LENGTH)` in the send view raised on these: a 500."""
    body = json.dumps({"to": [cast.paul_box.address], "subject": "Longueur", "text": "Bonjour"}).encode()
    headers = {
        "Host": "127.0.0.1",
        "Authorization": f"Bearer {api.secret}",
        "Content-Type": "application/json",
        "Content-Length": length,
        "Connection": "close",
    }
    answer = assert_problem(*raw_call(live_server, "POST", "/api/v1/messages", headers, body), 400, "bad_request")
    assert answer["detail"] == f"En-tête Content-Length invalide : « {length} » n'est pas un nombre d'octets."
    assert not Message.objects.filter(subject="Longueur").exists()


def test_a_form_of_too_many_fields_is_a_413_problem(transactional_db, cast, api, live_server, settings):
    """Django refuses it as suspicious (TooManyFieldsSent) while DRF reads the body: that was
    Django's HTML 400 page under /api/. (Too many files: test_more_attachments_than_the_limit…)"""
    url = f"{live_server.url}/api/v1/messages"
    auth = {"Authorization": f"Bearer {api.secret}"}
    fields = [("to", cast.paul_box.address), ("subject", "Formulaire"), ("text", "Bonjour")]
    fields += [(f"f{i}", "1") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)]
    response = requests.post(url, files={name: (None, value) for name, value in fields}, headers=auth, timeout=30)
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 413, "request_too_large"
    )
    assert answer["detail"] == f"Le formulaire compte plus de {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} champs."
    assert not Message.objects.filter(subject="Formulaire").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_a_host_the_server_does_not_answer_is_a_400_problem_under_api(
    transactional_db, cast, api, live_server, settings, debug
):
    """DisallowedHost is raised before any view: Django answered its HTML 400 page (DEBUG off)
    or its debug page (DEBUG on, as in scripts/run). Outside /api/ Django's page stays."""
    settings.DEBUG = debug
    headers = {"Host": "evil.example", "Authorization": f"Bearer {api.secret}", "Connection": "close"}
    status, content_type, body = raw_call(live_server, "GET", f"/api/v1/boxes/{api.box.address}/messages", headers)
    assert_problem(status, content_type, body, 400, "bad_request")
    status, content_type, _body = raw_call(live_server, "GET", "/pro/", {"Host": "evil.example", "Connection": "close"})
    assert status == 400 and content_type.startswith("text/html")


@pytest.mark.parametrize(
    "content_type, body, detail",
    [
        ("application/json", b"{bad", "Corps JSON illisible : erreur de syntaxe ligne 1, colonne 2."),
        ("application/json", b'{"to": [\n"a@b.fr",]}', "Corps JSON illisible : erreur de syntaxe ligne 2, colonne 10."),
        ("application/json", b'{"to": ["\xff"]}', "Corps JSON illisible : le corps n'est pas en UTF-8 (octet 10)."),
        ("application/json", b'{"subject": NaN}', "Corps JSON illisible : NaN et Infinity ne sont pas du JSON."),
        ("application/json", b"null", "Corps JSON illisible : null au lieu d'un objet { … }."),
        (
            "multipart/form-data",
            b"to=x",
            "Formulaire multipart illisible : le Content-Type doit donner un séparateur "
            "(« multipart/form-data; boundary=… ») que le corps emploie.",
        ),
    ],
    ids=["syntax", "syntax-line-2", "not-utf8", "nan", "null", "multipart-without-boundary"],
)
def test_an_unreadable_body_is_explained_in_french(
    transactional_db, cast, api, live_server, content_type, body, detail
):
    """The detail quoted Python's or DRF's English (« Expecting property name enclosed in double
    quotes », « No data provided », « Multipart form parse error - Invalid boundary »)."""
    response = requests.post(
        f"{live_server.url}/api/v1/messages",
        data=body,
        headers={"Authorization": f"Bearer {api.secret}", "Content-Type": content_type},
        timeout=30,
    )
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 422, "validation_error"
    )
    assert answer["detail"] == detail
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"bcc": ["x@ch-troispics.mssante.fr"]}, "bcc"),
        ({"attachement": [{"filename": "cr.pdf", "content_base64": "JVBERi0xLjQK"}]}, "attachement"),
        ({"attachments": [{"filename": "cr.pdf", "content_base64": "JVBERi0xLjQK", "size": 12}]}, "attachments.0.size"),
    ],
    ids=["bcc", "misspelt-attachments", "attachment-member"],
)
def test_a_member_no_field_reads_is_422_and_nothing_is_sent(transactional_db, cast, api, live_server, extra, field):
    """They were dropped without a word: a `bcc` nobody received, a misspelt `attachement`
    whose report left without its file, and the answer a 201."""
    body = {"to": [cast.paul_box.address], "subject": "Inconnu", "text": "Bonjour", **extra}
    response = requests.post(
        f"{live_server.url}/api/v1/messages", json=body, headers={"Authorization": f"Bearer {api.secret}"}, timeout=30
    )
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 422, "validation_error"
    )
    assert answer["detail"].startswith(f"{field} : Champ inconnu. Champs acceptés : ")
    assert not Message.objects.filter(subject="Inconnu").exists()


def test_a_multipart_attachments_field_is_422_pointing_at_files(transactional_db, cast, api, live_server):
    """In a form the JSON `attachments` is not read (files go in `files`): the message left
    without them."""
    form = {"to": cast.paul_box.address, "subject": "Formulaire", "text": "Bonjour", "attachments": "[]"}
    response = requests.post(
        f"{live_server.url}/api/v1/messages",
        files={name: (None, value) for name, value in form.items()},
        headers={"Authorization": f"Bearer {api.secret}"},
        timeout=30,
    )
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 422, "validation_error"
    )
    assert answer["errors"] == {"attachments": ["En multipart, les fichiers se joignent dans « files »."]}
    assert not Message.objects.filter(subject="Formulaire").exists()


def send_form(live_server, api, form: dict, files: list, **kwargs):
    return requests.post(
        f"{live_server.url}/api/v1/messages",
        data=form,
        files=files,
        headers={"Authorization": f"Bearer {api.secret}"},
        timeout=60,
        **kwargs,
    )


def test_more_attachments_than_the_limit_is_422_and_nothing_is_sent(transactional_db, cast, api, live_server, settings):
    """2000 tiny attachments made a 201: no limit but the body's size. Now API_MAX_ATTACHMENTS
    (100) in JSON and in a form alike, the form's past Django's files limit (the same number)
    included."""
    limit = settings.API_MAX_ATTACHMENTS
    assert limit == settings.DATA_UPLOAD_MAX_NUMBER_FILES == 100
    one = {"filename": "cr.txt", "content_type": "text/plain", "content_base64": "eA=="}
    body = {"to": [cast.paul_box.address], "subject": "Nombre", "text": "Bonjour", "attachments": [one] * (limit + 1)}
    response = requests.post(
        f"{live_server.url}/api/v1/messages", json=body, headers={"Authorization": f"Bearer {api.secret}"}, timeout=60
    )
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 422, "validation_error"
    )
    assert answer["errors"] == {"attachments": ["101 pièces jointes : 100 au plus par message."]}
    assert answer["detail"] == "attachments : 101 pièces jointes : 100 au plus par message."

    form = {"to": cast.paul_box.address, "subject": "Nombre", "text": "Bonjour"}
    files = [("files", (f"cr{i}.txt", b"x", "text/plain")) for i in range(limit + 1)]
    response = send_form(live_server, api, form, files)
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 422, "validation_error"
    )
    assert answer["errors"] == {"files": ["Plus de 100 pièces jointes : 100 au plus par message."]}

    settings.API_MAX_ATTACHMENTS = 3  # below Django's files limit: counted by the API itself
    response = send_form(live_server, api, form, files[:4])
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 422, "validation_error"
    )
    assert answer["detail"] == "files : 4 pièces jointes : 3 au plus par message."
    assert not Message.objects.filter(subject="Nombre").exists()

    response = send_form(live_server, api, form, files[:3])
    assert response.status_code == 201, response.text
    assert Message.objects.get(subject="Nombre").attachments.count() == 3


@pytest.mark.parametrize("declared", ["pdf", "application/", "é/ü", "application/pdf x"])
def test_a_form_file_of_invalid_type_is_422_naming_the_file(transactional_db, cast, api, live_server, declared):
    """A part's Content-Type was stored as it came (`pdf` became `pdf/octet-stream`, `é/ü`
    application/octet-stream) where the JSON `content_type` is checked."""
    form = {"to": cast.paul_box.address, "subject": "Type", "text": "Bonjour"}
    files = [("files", ("lettre.txt", b"x", "text/plain")), ("files", ("cr.pdf", b"%PDF-1.4", declared))]
    response = send_form(live_server, api, form, files)
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 422, "validation_error"
    )
    assert list(answer["errors"]) == ["files"] and list(answer["errors"]["files"]) == ["1"]
    assert answer["detail"].startswith("files.1 : Type de contenu « ")
    assert "de « cr.pdf » invalide : attendu « type/sous-type » (ex. application/pdf)" in answer["detail"]
    assert not Message.objects.filter(subject="Type").exists()


def test_a_form_file_keeps_its_declared_type_or_is_octet_stream_as_in_json(transactional_db, cast, api, live_server):
    form = {"to": cast.paul_box.address, "subject": "Types", "text": "Bonjour"}
    files = [
        ("files", ("cr.pdf", b"%PDF-1.4", "Application/PDF")),
        ("files", ("scan.bin", b"x")),  # no Content-Type in its part
        ("files", ("note.txt", b"x", "text/plain; charset=utf-8")),
    ]
    response = send_form(live_server, api, form, files)
    assert response.status_code == 201, response.text
    json_call = {
        "to": [cast.paul_box.address],
        "subject": "Types JSON",
        "text": "Bonjour",
        "attachments": [{"filename": "scan.bin", "content_base64": "eA=="}],
    }
    response = requests.post(
        f"{live_server.url}/api/v1/messages",
        json=json_call,
        headers={"Authorization": f"Bearer {api.secret}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    stored = dict(
        Message.objects.get(subject="Types").attachments.values_list("filename", "content_type").order_by("position")
    )
    assert stored == {"cr.pdf": "application/pdf", "scan.bin": "application/octet-stream", "note.txt": "text/plain"}
    assert Message.objects.get(subject="Types JSON").attachments.get().content_type == "application/octet-stream"


def form_body(boundary: str, fields: dict) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n' for n, v in fields.items()]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


@pytest.mark.parametrize("length", [71, 201, 300])
def test_a_boundary_over_70_characters_is_a_400_saying_so(transactional_db, cast, api, live_server, length):
    """RFC 2046 allows 70 characters. Longer was read up to 201 (Django), « illisible » past
    them, and past DRF's 256-character Content-Type a 415 « type de média non supporté »."""
    fields = {"to": cast.paul_box.address, "subject": "Séparateur", "text": "Bonjour"}
    url = f"{live_server.url}/api/v1/messages"
    auth = {"Authorization": f"Bearer {api.secret}"}
    boundary = "b" * length
    response = requests.post(
        url,
        data=form_body(boundary, fields),
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    answer = assert_problem(
        response.status_code, response.headers["Content-Type"], response.content, 400, "bad_request"
    )
    assert answer["detail"] == (
        "Formulaire multipart illisible : séparateur (boundary) invalide, trop long "
        f"({length} caractères ; 70 au plus, RFC 2046)."
    )
    assert not Message.objects.exists()
    boundary = "b" * 70
    response = requests.post(
        url,
        data=form_body(boundary, fields),
        headers={**auth, "Content-Type": f'multipart/form-data; boundary="{boundary}"'},
        timeout=30,
    )
    assert response.status_code == 201, response.text
