"""An unhandled error under /api/ is a `500 server_error` problem with DEBUG on as off: with
DEBUG on (scripts/run, where integrators try their software) Django would answer with its HTML
technical page. Django still logs the error with its traceback."""

import logging

import pytest
from django.core.files.storage import default_storage
from django.test import Client

from mailboxes.models import Entry


def assert_server_error_problem(response):
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body == {
        "type": "urn:mssante:api:problem:server_error",
        "title": "Erreur interne du serveur",
        "title_en": "Internal server error",
        "status": 500,
        "detail": "Erreur inattendue du serveur.",
        "code": "server_error",
    }
    assert len(response["X-Request-ID"]) == 32  # to quote to the operator, who finds the traceback
    assert response["X-Content-Type-Options"] == "nosniff"  # the other middleware's headers kept


@pytest.mark.parametrize("debug", [True, False])
def test_a_stored_file_gone_missing_is_a_problem_500_and_logged_with_its_traceback(cast, api, settings, caplog, debug):
    """A real API path failing through public means: the raw file of a message vanished from the
    storage (a restore gone wrong), so reading it raises FileNotFoundError in the view."""
    settings.DEBUG = debug
    sent = api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "1", "text": "t"})
    assert sent.status_code == 201, sent.content
    entry = Entry.objects.get(mailbox=api.box, message_id=sent.json()["id"])
    default_storage.delete(entry.message.raw.name)
    client = Client(raise_request_exception=False)
    url = f"/api/v1/boxes/{api.box.address}/messages/{entry.pk}/raw"
    # A browser's Accept (Django's debug page would be HTML) and a client's JSON one.
    for accept in ("text/html,application/xhtml+xml,*/*;q=0.8", "application/json"):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="django.request"):
            response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {api.secret}", HTTP_ACCEPT=accept)
        assert_server_error_problem(response)
        (logged,) = [r for r in caplog.records if r.name == "django.request"]
        assert logged.getMessage() == f"Internal Server Error: {url}"
        assert logged.exc_info and logged.exc_info[0] is FileNotFoundError


@pytest.mark.urls("tests.api.failing_urls")
@pytest.mark.parametrize("debug", [True, False])
def test_a_failing_plain_view_under_api_is_a_problem_500(db, settings, caplog, debug):
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/api/v1/failing", HTTP_ACCEPT="text/html")
    assert_server_error_problem(response)
    (logged,) = [r for r in caplog.records if r.name == "django.request"]
    assert logged.exc_info and logged.exc_info[0] is RuntimeError


@pytest.mark.urls("tests.api.failing_urls")
def test_outside_the_api_a_500_stays_django_s_page(db, settings):
    settings.DEBUG = True
    response = Client(raise_request_exception=False).get("/webmail/failing", HTTP_ACCEPT="text/html")
    assert response.status_code == 500 and response["Content-Type"].startswith("text/html")
    assert b"RuntimeError" in response.content  # the technical page, DEBUG being on
