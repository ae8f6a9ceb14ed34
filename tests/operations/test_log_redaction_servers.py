"""From outside: the product served as a real process — the development server as scripts/run
starts it (DEBUG on, plain lines) and gunicorn with the documented config (gunicorn.conf.py,
DEBUG off, JSON lines) — is asked for paths that carry a patient's address or INS, by an HTTP
client over a loopback socket. Each request is in the server's output with its status and its
request id; the INS is nowhere in it."""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.clients.conftest import free_port
from tests.factories import make_ins

ROOT = Path(__file__).resolve().parents[2]
INS = make_ins(seq=4242)
CORSICAN = make_ins(dept="2B", seq=31)
# (path, status, request id): an unknown API route, a real one without a key and with an
# unknown key, and a page outside the API (a redirect to the sign-in, logged by the server only).
REQUESTS = [
    (f"/api/v1/patients/{INS}@patient.mssante.fr?ins={INS[:13]}", 404, "p08-unknown-route"),
    (f"/api/v1/boxes/{INS}%40patient.mssante.fr/messages?folder=inbox", 401, "p08-no-key-0001"),
    (f"/api/v1/boxes/{CORSICAN}%40patient.mssante.fr/messages", 401, "p08-bad-key-0001"),
    (f"/pro/?q={INS}", 302, "p08-webmail-0001"),
]


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    """A migrated SQLite database of the servers' own (the API audits every call)."""
    var = tmp_path_factory.mktemp("var")
    env = server_env(var, debug=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    return var


def server_env(var: Path, *, debug: bool, log_format: str = "plain") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DJANGO_"))}
    env.update(
        VAR_DIR=str(var),
        DEBUG="true" if debug else "false",
        SECRET_KEY="test-only-secret-key-of-the-log-redaction-servers",
        ALLOWED_HOSTS="127.0.0.1",
        LOG_FORMAT=log_format,
        PYTHONUNBUFFERED="1",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


class Output:
    """A process's stdout and stderr, read as they come."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        for stream in (process.stdout, process.stderr):
            threading.Thread(target=self.read, args=(stream,), daemon=True).start()

    def read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, seconds: float = 20) -> list[str]:
        deadline = time.monotonic() + seconds
        while not predicate(self.lines):
            assert time.monotonic() < deadline, "\n".join(self.lines[-40:])
            time.sleep(0.05)
        return list(self.lines)


def serve(command: list[str], env: dict, port: int):
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = Output(process)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)  # noqa: S310
            return process, output
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "\n".join(output.lines[-40:])
            time.sleep(0.1)


def ask(port: int, path: str, request_id: str, key: str = "") -> int:
    """GET through a real socket, as behind the TLS proxy (X-Forwarded-Proto), redirects not
    followed: the status the server answered."""
    headers = {"X-Request-ID": request_id, "X-Forwarded-Proto": "https"}
    if key:
        headers["Authorization"] = f"Bearer {key}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        return opener.open(urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers), timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


def ask_everything(port: int) -> None:
    for path, status, request_id in REQUESTS:
        key = "mss_000000000000_unknown" if "bad-key" in request_id else ""
        assert ask(port, path, request_id, key) == status, path


def assert_no_ins(lines: list[str]) -> None:
    everything = "\n".join(lines)
    for secret in (INS, INS[:13], CORSICAN, CORSICAN[:13], CORSICAN.lower()):
        assert secret not in everything, secret
    assert "***@patient.mssante.fr" in everything


def test_the_development_server_logs_each_request_without_the_ins(var_dir):
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"]
    process, output = serve(command, server_env(var_dir, debug=True), port)
    try:
        ask_everything(port)
        # The access line of each request: its id and its status (the server writes it last).
        for _path, status, request_id in REQUESTS:
            output.wait_for(lambda lines, r=request_id, s=status: any(f"[{r}]" in x and f" {s} " in x for x in lines))
        lines = output.wait_for(lambda lines: any("Not Found: /api/v1/patients/" in x for x in lines))
    finally:
        process.terminate()
        process.wait(10)
    assert any(
        re.search(r" WARNING django\.request \[p08-no-key-0001\] Unauthorized: /api/v1/boxes/\*\*\*@", x) for x in lines
    )
    (access,) = [x for x in lines if "django.server [p08-unknown-route]" in x]
    assert '"GET /api/v1/patients/***@patient.mssante.fr?ins=*** HTTP/1.1" 404' in access
    # DEBUG on: Django's own console handler no longer prints a second, unmasked copy.
    assert sum("Not Found: /api/v1/patients/" in x for x in lines) == 1
    assert_no_ins(lines)


def test_gunicorn_with_the_documented_config_logs_each_request_without_the_ins(var_dir):
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "mssante.wsgi", "-c", "gunicorn.conf.py", "-w", "1"]
    command += ["-b", f"127.0.0.1:{port}"]
    process, output = serve(command, server_env(var_dir, debug=False, log_format="json"), port)
    try:
        ask_everything(port)
        for _path, _status, request_id in REQUESTS:
            output.wait_for(
                lambda lines, r=request_id: any(f'"request_id": "{r}"' in x for x in lines if "gunicorn.access" in x)
            )
    finally:
        process.terminate()
        process.wait(10)
    lines = output.lines
    entries = [json.loads(x) for x in lines if x.startswith("{")]
    access = {e["request_id"]: e["message"] for e in entries if e["logger"] == "gunicorn.access"}
    for path, status, request_id in REQUESTS:
        assert f" {status} " in access[request_id], (request_id, access[request_id])
    assert access["p08-no-key-0001"].startswith(
        '127.0.0.1 "GET /api/v1/boxes/***@patient.mssante.fr/messages HTTP/1.1" 401'
    )
    assert "?" not in access["p08-webmail-0001"]  # no query string in gunicorn's access line
    refused = [e for e in entries if e["logger"] == "django.request" and e["request_id"] == "p08-bad-key-0001"]
    assert [e["message"] for e in refused] == ["Unauthorized: /api/v1/boxes/***@patient.mssante.fr/messages"]
    assert_no_ins(lines)
