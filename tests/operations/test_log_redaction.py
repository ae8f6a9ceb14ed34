"""Patient addresses and INS out of every log line (operations/observability.py `RedactFilter`):
the filter on its own, in the plain and JSON formats the settings install, and the false
positives that matter (ids, timestamps, longer runs of digits) left alone."""

import io
import json
import logging

import pytest

from mssante.settings import LOGGING
from operations.observability import JsonFormatter, RedactFilter, RequestIdFilter
from tests.factories import make_ins

INS = make_ins(seq=4242)  # 15 characters: 13 + the key
CORSICAN = make_ins(dept="2A", seq=17)


def settings_filter() -> RedactFilter:
    """The filter as LOGGING builds it (its "()" factory and its arguments)."""
    config = dict(LOGGING["filters"]["redact"])
    assert config.pop("()") == "operations.observability.RedactFilter"
    return RedactFilter(**config)


def test_the_console_handler_every_logger_writes_through_has_the_filter():
    assert LOGGING["handlers"]["console"]["filters"] == ["request_id", "redact"]
    for name in ("django.server", "gunicorn.error", "gunicorn.access"):
        assert LOGGING["loggers"][name]["handlers"] == ["console"], name
    # Django's own console handler (DEBUG on) would print django.request lines unfiltered.
    assert LOGGING["loggers"]["django"]["handlers"] == []


@pytest.mark.parametrize(
    "text, masked",
    [
        (f"/api/v1/boxes/{INS}@patient.mssante.fr/messages", "/api/v1/boxes/***@patient.mssante.fr/messages"),
        (f"/api/v1/boxes/{INS}%40patient.mssante.fr/raw", "/api/v1/boxes/***@patient.mssante.fr/raw"),
        (f"?to={INS.upper()}%40PATIENT.MSSANTE.FR&x=1", "?to=***@patient.mssante.fr&x=1"),
        (f"/b/{CORSICAN.lower()}@patient.mssante.fr", "/b/***@patient.mssante.fr"),
        # The local part whatever it is: a wrong or mistyped INS is still somebody's.
        ("/b/1-85-03@patient.mssante.fr", "/b/***@patient.mssante.fr"),
        (f"/search?q={INS}", "/search?q=***"),
        (f"/search?q={INS[:13]}&page=2", "/search?q=***&page=2"),
        (f"/search?q={CORSICAN}", "/search?q=***"),
        (f"/p/%2F{INS}%2F", "/p/%2F***%2F"),
        # The chosen risk: a lone epoch in milliseconds has an INS's shape, and is masked.
        ("/static/app.js?_=1733050526123", "/static/app.js?_=***"),
    ],
)
def test_patient_addresses_and_ins_are_masked(text, masked):
    assert settings_filter().redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "/api/v1/messages/123456/raw",  # database ids
        "/api/v1/boxes/cardiologie@ch-troispics.mssante.fr/messages?limit=50",  # a professional's box
        "request 8f14e45fceea167a5a36dedd4bea2543",  # a request id
        "2026-12-01T11:04:40.619+00:00",  # a timestamp
        "since=20261201110440",  # 14 digits: a compact timestamp, a SIRET (13 + 1 digit)
        f"x={INS}9 y=9{INS[:13]}",  # 16 and 14 digits: an INS's digits inside a longer number
        f"id=1733050526{INS}",  # 13 and 15 digits inside a 25-digit one
        "<20261201110440.1733050.12@mta.example.fr>",  # a Message-ID
        "rpps=10001234567 finess=750712184 siret=26750045200011",  # directory identifiers
        "5850312345678 6850312345678 9850312345678",  # 13 digits, no INS begins with 5, 6 or 9
        f"{INS[:12]} {INS[:14]}",  # 12 and 14 characters
    ],
)
def test_ids_that_are_not_ins_shaped_are_left_alone(text):
    assert settings_filter().redact(text) == text


def log_through(formatter) -> tuple[io.StringIO, logging.Logger]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(settings_filter())
    logger = logging.getLogger(f"tests.redaction.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return stream, logger


def test_plain_lines_are_masked_message_arguments_and_exception_text():
    plain = logging.Formatter(LOGGING["formatters"]["plain"]["format"])
    stream, logger = log_through(plain)
    logger.warning("Not Found: %s", f"/api/v1/x/{INS}@patient.mssante.fr")
    logger.info('"%s" %s %s', f"GET /api/v1/boxes/{INS}%40patient.mssante.fr/messages?q={INS} HTTP/1.1", 401, 171)
    try:
        raise ValueError(f"no box {INS}@patient.mssante.fr ({INS})")
    except ValueError:
        logger.exception("Internal Server Error: %s", "/api/v1/messages")
    logger.info("message %s delivered to box %s", 123456, 42)
    text = stream.getvalue()
    assert INS not in text and INS[:13] not in text
    lines = text.splitlines()
    assert lines[0].endswith("] Not Found: /api/v1/x/***@patient.mssante.fr")  # after the request id
    assert lines[1].endswith('"GET /api/v1/boxes/***@patient.mssante.fr/messages?q=*** HTTP/1.1" 401 171')
    assert "Internal Server Error: /api/v1/messages" in lines[2]
    assert "ValueError: no box ***@patient.mssante.fr (***)" in text  # the traceback kept, masked
    assert lines[-1].endswith("message 123456 delivered to box 42")  # nothing to mask: as it was


def test_a_call_whose_arguments_do_not_fit_is_logged_masked_not_reported_raw():
    stream, logger = log_through(logging.Formatter("%(message)s"))
    logger.warning("Not Found: %s %s", f"/api/v1/x/{INS}@patient.mssante.fr")  # one argument short
    assert stream.getvalue() == "Not Found: %s %s (unformattable arguments)\n"


def test_json_lines_are_masked_and_stay_json():
    stream, logger = log_through(JsonFormatter())
    logger.warning("Not Found: %s", f"/api/v1/boxes/{CORSICAN}@patient.mssante.fr/messages")
    try:
        raise KeyError(INS)
    except KeyError:
        logger.exception("Internal Server Error: %s", f"/api/v1/x/{INS}")
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in entries] == [
        "Not Found: /api/v1/boxes/***@patient.mssante.fr/messages",
        "Internal Server Error: /api/v1/x/***",
    ]
    assert entries[1]["exception"] == "KeyError"
    assert INS not in stream.getvalue() and CORSICAN not in stream.getvalue()
