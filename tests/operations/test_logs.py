"""Structured logs: one JSON object per line, a request id on each, and no personal data across a
whole story (a professional sends, the patient reads and downloads) — sentinel strings in the
subject, the body, the file name and the file must appear on no line."""

import io
import json
import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mailboxes.models import Attachment, Entry, Message
from operations.observability import JsonFormatter, RequestIdFilter

SUBJECT = "SENTINELLE-SUJET-7f3a"
BODY = "SENTINELLE-CORPS-91bc"
FILENAME = "sentinelle-fichier-44de.pdf"
CONTENT = b"%PDF-1.4 SENTINELLE-CONTENU-0c2e"


@pytest.fixture
def json_log():
    """The JSON handler the LOG_FORMAT=json setting installs, on the root logger, at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_the_json_setting_installs_the_formatter_and_the_filter(settings):
    from mssante.settings import LOGGING

    assert LOGGING["formatters"]["json"]["()"] == "operations.observability.JsonFormatter"
    assert LOGGING["handlers"]["console"]["filters"] == ["request_id", "redact"]


def test_a_send_read_download_story_logs_ids_only(cast, client, json_log, django_capture_on_commit_callbacks):
    # The professional writes to the patient through the webmail.
    client.force_login(cast.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("webmail:compose"),
            {
                "sender": cast.alice_box.pk,
                "to": cast.paul_patient.address,
                "subject": SUBJECT,
                "body": BODY,
                "attachments": [SimpleUploadedFile(FILENAME, CONTENT, content_type="application/pdf")],
            },
            HTTP_X_REQUEST_ID="req-story-0001",
        )
    assert response.status_code == 302 and response["X-Request-ID"] == "req-story-0001"
    message = Message.objects.get(subject=SUBJECT)
    # The patient reads it and downloads the file; a wrong URL gets a 404 (logged by Django).
    client.force_login(cast.paul)
    entry = Entry.objects.get(mailbox=cast.paul_box, message=message)
    assert client.get(f"/patient/message/{entry.pk}/").status_code == 200
    attachment = Attachment.objects.get(message=message)
    download = client.get(f"/operateur/piece-jointe/{attachment.pk}")
    assert download.status_code == 200 and b"".join(download.streaming_content) == CONTENT
    assert client.get("/patient/message/999999/").status_code == 404
    client.logout()
    client.post(reverse("account_login"), {"login": "paul", "password": "mauvais-SENTINELLE"})

    lines = [line for line in json_log.getvalue().splitlines() if line]
    assert len(lines) >= 3, lines  # the delivery, the notification, the 404 at least
    entries = [json.loads(line) for line in lines]
    assert all(e["request_id"] and e["request_id"] != "-" for e in entries if e["logger"].startswith("django.request"))
    assert any(e["request_id"] == "req-story-0001" for e in entries)
    not_found = [e for e in entries if e["message"] == "Not Found: /patient/message/999999/"]
    assert len(not_found) == 1 and len(not_found[0]["request_id"]) == 32  # that request's own id
    tasks = [e for e in entries if e["logger"] == "patients.notifications"]
    assert tasks and all(e["request_id"] not in ("-", "req-story-0001") for e in tasks)  # the task's id
    everything = json_log.getvalue()
    patient = cast.paul_patient
    sentinels = [SUBJECT, BODY, FILENAME, "SENTINELLE", patient.ins, patient.birth_name, patient.first_names]
    sentinels += [cast.paul_box.address, cast.alice_box.address, "Martin", "Lambert"]
    for sentinel in sentinels:
        assert sentinel not in everything, sentinel


LATE_LINE_TEST = """
import atexit
import logging


def test_leaves_a_line_to_log_after_the_run():
    # Logged once pytest has finished and closed its capture, as a thread or exit handler would.
    atexit.register(lambda: logging.getLogger("tests.late").warning("late line %s", 42))
"""


def test_a_line_logged_after_a_pytest_run_reaches_stderr(tmp_path):
    """The console handler writes to the process's standard error, not to the capture stream
    pytest put in sys.stderr while the settings configured logging (closed when the run ends):
    a line logged after the run is printed, not a "--- Logging error ---" traceback."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "test_late.py").write_text(LATE_LINE_TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", str(root / "pyproject.toml"), "--rootdir", str(root)]
        + [str(tmp_path / "test_late.py")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Logging error" not in done.stderr, done.stderr[-3000:]
    assert "WARNING tests.late [-] late line 42" in done.stderr
