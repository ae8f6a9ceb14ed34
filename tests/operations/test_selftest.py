"""The go-live self-test: each check against the real thing (a certificate file, the SMTP gateway
listening with TLS, the delivery path and the test address), with what to fix in French."""

import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from operations import selftest
from tests.transport.conftest import free_port  # in MSS_TEST_PORTS when set


def certificate(folder, days: int):
    cert, key = folder / f"cert-{days}.pem", folder / f"key-{days}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days)]
        + ["-subj", "/CN=mx.ch-troispics.mssante.fr", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_an_expiring_certificate_fails_and_says_to_renew(tmp_path, settings):
    settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY = certificate(tmp_path, 10)
    result = selftest.check_certificate()
    assert result.status == selftest.FAIL
    assert "dans 9 jour(s)" in result.found or "dans 10 jour(s)" in result.found
    assert "renouvelez le certificat" in result.fix

    settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY = certificate(tmp_path, 90)
    assert selftest.check_certificate().status == selftest.OK


def test_a_missing_or_mismatched_certificate_fails(tmp_path, settings):
    settings.SMTPD_TLS_CERT = settings.SMTPD_TLS_KEY = ""
    assert "SMTPD_TLS_CERT" in selftest.check_certificate().fix
    cert, _key = certificate(tmp_path, 90)
    _other_cert, other_key = certificate(tmp_path, 91)
    settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY = cert, other_key
    result = selftest.check_certificate()
    assert result.status == selftest.FAIL and "illisible" in result.found


@pytest.fixture
def gateway(db, settings, tmp_path):
    from mailboxes.smtp_gateway import GatewayController

    settings.SMTPD_TLS_CERT, settings.SMTPD_TLS_KEY = certificate(tmp_path, 90)
    settings.SMTPD_HOST, settings.SMTPD_PORT = "127.0.0.1", free_port()
    controllers = []

    def start():
        controller = GatewayController(settings.SMTPD_HOST, settings.SMTPD_PORT)
        controller.start()
        controllers.append(controller)

    yield start
    for controller in controllers:
        controller.stop()


def test_the_smtp_listener_offers_the_mssante_profile_only(gateway, settings):
    from prometheus_client import REGISTRY

    settings.SMTPD_TLS_MAX_VERSION = "1.2"
    gateway()
    sessions_before = REGISTRY.get_sample_value("mss_smtp_sessions_total") or 0
    result = selftest.check_smtp_tls()
    assert result.status == selftest.OK, result
    # Every probe was an SMTP session, counted for /metrics.
    assert REGISTRY.get_sample_value("mss_smtp_sessions_total") - sessions_before >= 4
    assert "TLSv1.2" in result.found and "TLSv1.1" not in result.found
    assert "ECDHE-RSA-AES256-GCM-SHA384" in result.found


def test_an_extra_cipher_suite_is_named(gateway, settings):
    settings.SMTPD_TLS_MAX_VERSION = "1.2"
    settings.SMTPD_TLS_CIPHERS += ":AES128-GCM-SHA256"
    gateway()
    result = selftest.check_smtp_tls()
    assert result.status == selftest.FAIL and "AES128-GCM-SHA256" in result.fix


def test_a_silent_listener_says_to_start_it(db, settings):
    settings.SMTPD_HOST, settings.SMTPD_PORT = "127.0.0.1", free_port()
    result = selftest.check_smtp_tls()
    assert result.status == selftest.FAIL and "runsmtpd" in result.fix


@pytest.mark.django_db(transaction=True)  # the answer is queued after commit, as in production
def test_round_trip_through_the_test_address(cast, settings):
    settings.SELFTEST_ROUND_TRIP_SECONDS = 5
    settings.SELFTEST_MAILBOX = ""
    assert "SELFTEST_MAILBOX" in selftest.check_round_trip().fix
    settings.SELFTEST_MAILBOX = cast.cardio.address
    result = selftest.check_round_trip(cast.ada)
    assert result.status == selftest.OK, result
    assert cast.cardio.address in result.found


def test_whitelist_freshness_follows_the_import(cast, tmp_path):
    result = selftest.check_whitelist()
    assert result.status == selftest.FAIL and "import_whitelist" in result.fix
    xml = tmp_path / "liste.xml"
    xml.write_text(
        '<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema"><Domaine><Nom>autre.mssante.fr</Nom>'
        "</Domaine></ListeBlanche>"
    )
    call_command("import_whitelist", str(xml), stdout=StringIO())
    assert selftest.check_whitelist().status == selftest.OK


def test_directory_freshness_follows_the_imports(cast, client, tmp_path):
    """Found on the dashboard: "Annuaire national : module non installé" the day the directory
    was imported (the check looked for a model that never existed), and the self-test skipped it."""
    client.force_login(cast.ada)
    result = selftest.check_directory()
    assert result.status == selftest.FAIL and "jamais importé" in result.found and "import_annuaire" in result.fix
    assert (
        'data-testid="directory-freshness">jamais importé<'
        in client.get(reverse("operations:dashboard")).content.decode()
    )

    call_command("import_annuaire", "--demo", stdout=StringIO())
    result = selftest.check_directory()
    today = timezone.localdate().strftime("%d/%m/%Y")
    assert result.status == selftest.OK and result.found == f"dernier import le {today}"
    page = client.get(reverse("operations:dashboard")).content.decode()
    assert f"dernier import le {today}" in page and "module non installé" not in page

    bad = tmp_path / "extraction.txt"
    bad.write_text("pas une extraction\n", encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("import_annuaire", str(bad), stdout=StringIO())
    result = selftest.check_directory()
    assert result.status == selftest.FAIL and f"dernier import le {today} ; la tentative du" in result.found
    assert "a échoué" in client.get(reverse("operations:dashboard")).content.decode()


def test_time_and_relay(db, settings):
    assert selftest.check_time().status == selftest.OK
    settings.RELAY_HOST = ""
    assert "RELAY_HOST" in selftest.check_relay().fix
    settings.RELAY_HOST, settings.RELAY_PORT = "127.0.0.1", free_port()
    result = selftest.check_relay()
    assert result.status == selftest.FAIL and "injoignable" in result.found


@pytest.mark.django_db(transaction=True)
def test_the_command_lists_every_check_and_fails_with_a_code(cast, settings):
    settings.SELFTEST_ROUND_TRIP_SECONDS = 5
    settings.SELFTEST_MAILBOX = cast.cardio.address
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("selftest", stdout=out)
    assert error.value.returncode == 1
    text = out.getvalue()
    for label in ("Certificat TLS", "Liste blanche".lower(), "Aller-retour", "Fuseau horaire", "chaîne des traces"):
        assert label.lower() in text.lower()
    assert "[OK    ] Aller-retour par l'adresse de test" in text
    assert "→ définissez SMTPD_TLS_CERT" in text or "→ installez le certificat" in text


def test_the_admin_page_runs_the_checks(cast, client, settings):
    settings.SELFTEST_ROUND_TRIP_SECONDS = 1
    client.force_login(cast.ada)
    url = reverse("admin:operations_selftest")
    assert "Lancer l'auto-test" in client.get(url).content.decode()
    page = client.post(url, {}).content.decode()
    assert 'id="selftest-results"' in page and "Fraîcheur de la liste blanche" in page
    assert "importez la liste blanche" in page
    client.force_login(cast.alice)
    assert client.get(url).status_code == 302
