"""No error e-mail (docs/operations.md "Logs"): Django's default `mail_admins` handler would send
the administrators a report per 500 that quotes the request (path, query, form fields, cookies),
beyond the reach of the log's masking. An operator who sets ADMINS gets no such mail; the error
is the log's ERROR line, with the patient's address masked."""

import io
import logging

import pytest
from django.core import mail

from mssante.settings import LOGGING
from operations.observability import RequestIdFilter
from tests.factories import make_ins
from tests.operations.test_log_redaction import settings_filter

INS = make_ins(seq=9090)


@pytest.fixture
def console_lines():
    """The console handler as LOGGING builds it (plain format, its two filters), on the root."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOGGING["formatters"]["plain"]["format"]))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(settings_filter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


@pytest.mark.urls("tests.operations.failing_urls")
def test_a_server_error_on_a_patient_path_sends_no_mail_and_logs_no_ins(db, client, settings, console_lines):
    settings.DEBUG = False
    settings.ADMINS = [("Exploitation", "exploitation@ch-troispics.mssante.fr")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client.raise_request_exception = False

    response = client.get(
        f"/panne/{INS}@patient.mssante.fr", {"ins": INS}, secure=True, HTTP_X_REQUEST_ID="p13-panne-0001"
    )

    assert response.status_code == 500
    assert mail.outbox == []
    text = console_lines.getvalue()
    assert "ERROR django.request [p13-panne-0001] Internal Server Error: /panne/***@patient.mssante.fr" in text
    assert "RuntimeError: simulated failure" in text
    assert INS not in text and INS[:13] not in text
