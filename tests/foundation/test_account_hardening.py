"""Issue 15 items 20, 22, 23: second factor on by default, inactivity timeout, Pro Santé Connect
unreachable."""

import os
import socket
import subprocess
import sys
import time

from django.core import checks

from accounts.middleware import LAST_ACTIVITY_KEY
from tests.factories import PASSWORD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def setting_in_fresh_process(env: dict, name: str) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MFA_REQUIRED_FOR_PROFESSIONALS", "DJANGO_SETTINGS_MODULE")
    } | env
    code = f"import django; from django.conf import settings; django.setup(); print(settings.{name})"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "mssante.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_second_factor_required_by_default_unless_debug():
    production = {"DEBUG": "false", "SECRET_KEY": "x" * 50}
    assert setting_in_fresh_process(production, "MFA_REQUIRED_FOR_PROFESSIONALS") == "True"
    assert setting_in_fresh_process({"DEBUG": "true"}, "MFA_REQUIRED_FOR_PROFESSIONALS") == "False"
    assert (
        setting_in_fresh_process(
            {**production, "MFA_REQUIRED_FOR_PROFESSIONALS": "false"}, "MFA_REQUIRED_FOR_PROFESSIONALS"
        )
        == "False"
    )


def test_deploy_check_warns_when_the_second_factor_is_off(settings):
    settings.DEBUG = False
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = False
    ids = [m.id for m in checks.run_checks(include_deployment_checks=True)]
    assert "accounts.W001" in ids
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    assert "accounts.W001" not in [m.id for m in checks.run_checks(include_deployment_checks=True)]


def sign_in(client, username):
    assert client.post("/comptes/login/", {"login": username, "password": PASSWORD}).status_code == 302


def test_an_idle_professional_session_ends(client, cast, settings):
    settings.SESSION_INACTIVITY_TIMEOUT = 1800
    sign_in(client, "alice")
    page = client.get("/pro/")
    assert page.status_code in (200, 302)
    inbox = client.get("/pro/", follow=True)
    assert b'data-session-timeout="1800"' in inbox.content and b'data-session-warning="120"' in inbox.content
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 1700
    session.save()
    assert client.get("/pro/", follow=True).status_code == 200  # 28 min idle: still signed in
    session = client.session
    assert session[LAST_ACTIVITY_KEY] >= int(time.time()) - 5  # and the clock restarted
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 1801
    session.save()
    response = client.get("/pro/")
    assert response.status_code == 302 and response["Location"] == "/comptes/login/?expiree=1"
    assert "_auth_user_id" not in client.session
    page = client.get(response["Location"]).content.decode()
    assert "période d'inactivité" in page and "brouillons" in page
    # An htmx request is told where to go.
    sign_in(client, "alice")
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 4000
    session.save()
    response = client.get("/pro/", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response["HX-Redirect"] == "/comptes/login/?expiree=1"


def test_patients_keep_their_own_setting(client, cast, settings):
    settings.SESSION_INACTIVITY_TIMEOUT = 60
    settings.SESSION_INACTIVITY_TIMEOUT_PATIENT = 0
    sign_in(client, cast.paul.username)
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 4000
    session.save()
    response = client.get("/patient/")
    assert response.status_code == 200
    assert b"data-session-timeout" not in response.content


def test_a_patients_expired_session_promises_no_draft(client, cast, settings):
    """A patient's composer keeps no draft: the sign-in page says the session ended, not that
    the message being written was kept (it told patients so)."""
    settings.SESSION_INACTIVITY_TIMEOUT_PATIENT = 600
    sign_in(client, cast.paul.username)
    session = client.session
    session[LAST_ACTIVITY_KEY] = int(time.time()) - 4000
    session.save()
    response = client.get("/patient/")
    assert response.status_code == 302 and response["Location"] == "/comptes/login/?expiree=2"
    page = client.get(response["Location"]).content.decode()
    assert "période d'inactivité" in page and "brouillons" not in page
    sign_in(client, cast.paul.username)
    assert client.post("/comptes/session/expiree/")["Location"] == "/comptes/login/?expiree=2"
    # Already signed out (the page's last request reached the server past the timeout): the
    # page says which portal it was.
    assert client.post("/comptes/session/expiree/", {"portail": "patient"})["Location"] == "/comptes/login/?expiree=2"
    assert client.post("/comptes/session/expiree/")["Location"] == "/comptes/login/?expiree=2"
    assert client.post("/comptes/session/expiree/", {"portail": "pro"})["Location"] == "/comptes/login/?expiree=1"


def test_keepalive_and_expiry_endpoints(client, cast):
    sign_in(client, "alice")
    assert client.post("/comptes/session/prolonger/").status_code == 204
    response = client.post("/comptes/session/expiree/")
    assert response.status_code == 302 and response["Location"] == "/comptes/login/?expiree=1"
    assert "_auth_user_id" not in client.session


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_pro_sante_connect_unreachable_gives_a_french_page(client, db, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "psc",
                    "name": "Pro Santé Connect",
                    "client_id": "mss",
                    "secret": "s",
                    "settings": {"server_url": f"http://127.0.0.1:{closed_port()}/realms/psc"},
                }
            ]
        }
    }
    response = client.post("/comptes/oidc/psc/login/")
    assert response.status_code == 503
    page = response.content.decode()
    assert "Pro Santé Connect est momentanément injoignable" in page
    assert 'href="/comptes/login/"' in page and "second facteur" in page
    assert "Traceback" not in page
