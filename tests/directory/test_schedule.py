"""The scheduled re-import (issue 12 §1): the beat entry, the task from a local path or an HTTPS
URL (a real TLS server on loopback with its own certificate), failures recorded for the admin,
the admin page in French, and the demo data of the run command."""

import io
import ssl
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from directory.models import Entry, ImportRun
from directory.tasks import import_scheduled
from mssante.celery import app

pytestmark = pytest.mark.django_db


def test_the_import_is_in_the_beat_schedule_and_registered():
    entry = django_settings.CELERY_BEAT_SCHEDULE["directory-import"]
    assert entry["task"] == "directory.import_scheduled"
    assert entry["task"] in app.tasks
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {30}


def test_task_imports_the_configured_path_and_skips_without_one(extract, settings):
    settings.DIRECTORY_IMPORT_SOURCE = ""
    assert import_scheduled.apply().get() is None
    assert not ImportRun.objects.exists()
    path, expected = extract(rows=150)
    settings.DIRECTORY_IMPORT_SOURCE = str(path)
    run = ImportRun.objects.get(pk=import_scheduled.apply().get())
    assert run.status == ImportRun.Status.DONE and run.added == expected.addresses
    out = io.StringIO()
    call_command("import_annuaire", stdout=out)  # cron: no FILE, the configured source
    assert f"{expected.addresses} inchangée(s)" in out.getvalue()


def test_plain_http_and_missing_files_are_recorded_failures(settings, tmp_path):
    settings.DIRECTORY_IMPORT_SOURCE = "http://127.0.0.1:9/annuaire.zip"
    assert import_scheduled.apply().get() is None
    failed = ImportRun.objects.get()
    assert failed.status == ImportRun.Status.FAILED and "https://" in failed.error
    settings.DIRECTORY_IMPORT_SOURCE = str(tmp_path / "absent.txt")
    with pytest.raises(CommandError, match="introuvable"):
        call_command("import_annuaire")


@pytest.fixture
def https_folder(tmp_path):
    """A real HTTPS server on 127.0.0.1 serving `tmp_path/www`, and its certificate."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    www = tmp_path / "www"
    www.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(www)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_task_downloads_the_zipped_extract_over_https(extract, settings, https_folder):
    www, base, cert = https_folder
    path, expected = extract(rows=200, zipped=True, name="Extraction_Correspondance_MSSante.zip")
    (www / path.name).write_bytes(path.read_bytes())
    settings.DIRECTORY_IMPORT_SOURCE = f"{base}/{path.name}"
    settings.DIRECTORY_IMPORT_CA_FILE = ""  # the system's CAs do not know this certificate
    assert import_scheduled.apply().get() is None
    assert "CERTIFICATE_VERIFY_FAILED" in ImportRun.objects.get().error
    settings.DIRECTORY_IMPORT_CA_FILE = str(cert)
    run = ImportRun.objects.get(pk=import_scheduled.apply().get())
    assert run.added == expected.addresses and run.source == settings.DIRECTORY_IMPORT_SOURCE
    settings.DIRECTORY_DOWNLOAD_MAX_BYTES = 1000
    assert import_scheduled.apply().get() is None
    assert "plus de 1000 octets" in ImportRun.objects.first().error


def test_admin_shows_the_last_import_with_its_counts_in_french(extract, cast, client):
    path, expected = extract(rows=100)
    call_command("import_annuaire", str(path), stdout=io.StringIO())
    client.force_login(cast.ada)
    listing = client.get(reverse("admin:directory_importrun_changelist")).content.decode()
    assert "Imports de l’annuaire" in listing or "imports de l&#x27;annuaire" in listing.lower()
    assert "terminé" in listing and str(expected.addresses) in listing
    run = ImportRun.objects.get()
    detail = client.get(reverse("admin:directory_importrun_change", args=[run.pk])).content.decode()
    assert f"{expected.addresses} ajoutée(s)" in detail
    assert client.get(reverse("admin:directory_entry_changelist")).status_code == 200


def test_seed_demo_leaves_a_working_directory():
    call_command("seed_demo", stdout=io.StringIO())
    assert Entry.objects.filter(source=Entry.Source.NATIONAL).count() >= 20
    assert Entry.objects.filter(source=Entry.Source.HOSTED, address="alice.martin@ch-troispics.mssante.fr").exists()


class CutHandler(SimpleHTTPRequestHandler):
    """Announces the whole file, sends it up to a line end two thirds in, then hangs up: a
    transfer cut mid-way that still looks like a well-formed (shorter) extract."""

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()  # noqa: SIM115
        except OSError:
            self.send_error(404)
            return
        cut = data.rindex(b"\n", 0, len(data) * 2 // 3) + 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:cut])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def cut_https_folder(https_folder):
    www, _, cert = https_folder
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(CutHandler, directory=str(www)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.parent / "cert.pem", cert.parent / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_a_download_cut_at_a_line_end_is_a_failure_not_a_shorter_directory(extract, settings, cut_https_folder):
    www, base, cert = cut_https_folder
    path, expected = extract(rows=400)
    call_command("import_annuaire", str(path), stdout=io.StringIO())
    before = sorted(Entry.objects.values_list("address", flat=True))
    (www / "extraction.txt").write_bytes(path.read_bytes())
    settings.DIRECTORY_IMPORT_SOURCE = f"{base}/extraction.txt"
    settings.DIRECTORY_IMPORT_CA_FILE = str(cert)
    settings.DIRECTORY_MAX_REMOVED_PERCENT = 50  # a third missing would pass the shrink guard
    assert import_scheduled.apply().get() is None
    failed = ImportRun.objects.first()
    assert failed.status == ImportRun.Status.FAILED and "interrompu" in failed.error
    assert sorted(Entry.objects.values_list("address", flat=True)) == before


def test_a_download_answered_404_says_so_in_french(settings, https_folder):
    _, base, cert = https_folder
    settings.DIRECTORY_IMPORT_SOURCE = f"{base}/absent.zip"
    settings.DIRECTORY_IMPORT_CA_FILE = str(cert)
    with pytest.raises(CommandError) as error:
        call_command("import_annuaire")
    assert "404" in str(error.value) and "Not Found" not in str(error.value)
    assert "404" in ImportRun.objects.get().error


def test_the_command_takes_an_https_url_as_its_file(extract, settings, https_folder):
    www, base, cert = https_folder
    path, expected = extract(rows=120, zipped=True, name="Extraction_Correspondance_MSSante.zip")
    (www / path.name).write_bytes(path.read_bytes())
    settings.DIRECTORY_IMPORT_CA_FILE = str(cert)
    out = io.StringIO()
    call_command("import_annuaire", f"{base}/{path.name}", stdout=out)
    assert f"{expected.addresses} ajoutée(s)" in out.getvalue()
    assert ImportRun.objects.get().source == f"{base}/{path.name}"
    with pytest.raises(CommandError, match="https://"):
        call_command("import_annuaire", "http://127.0.0.1:9/annuaire.zip")


def test_the_admin_list_says_why_a_run_was_refused(extract, cast, client, tmp_path):
    """A night's refused or failed import must be understood from the list, without opening it."""
    path, _ = extract(rows=60)
    call_command("import_annuaire", str(path), stdout=io.StringIO())
    empty = tmp_path / "vide.txt"
    empty.write_bytes(b"")
    with pytest.raises(CommandError):
        call_command("import_annuaire", str(empty), stdout=io.StringIO())
    refused = ImportRun.objects.filter(status=ImportRun.Status.REFUSED).get()
    client.force_login(cast.ada)
    listing = client.get(reverse("admin:directory_importrun_changelist")).content.decode()
    assert refused.error in listing.replace("&#x27;", "'")
