"""Accounts (issue 2 §4): sign-in by identifier or e-mail, landing pages, no self sign-up, login
rate limit, password reset by e-mail, MFA required for professionals by setting, Pro Santé Connect
by configuration, and the production posture (`check --deploy`)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth import get_user_model
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/comptes/login/"


def login(client, who, password):
    return client.post(LOGIN, {"login": who, "password": password}, follow=True)


def landed_on(response) -> str:
    return response.redirect_chain[-1][0] if response.redirect_chain else response.request["PATH_INFO"]


@pytest.mark.parametrize("who", ["alice", "alice@exemple.fr", "ALICE@exemple.fr"])
def test_a_professional_signs_in_by_identifier_or_email_and_lands_on_their_mailboxes(client, cast, password, who):
    response = login(client, who, password)
    assert landed_on(response) == reverse("webmail:home")
    assert response.status_code == 200
    assert int(client.session["_auth_user_id"]) == cast.alice.pk


def test_a_patient_lands_on_their_inbox(client, cast, password):
    response = login(client, cast.paul.username, password)
    assert landed_on(response) == reverse("patients:inbox")
    assert response.status_code == 200
    assert int(client.session["_auth_user_id"]) == cast.paul.pk


def test_home_sends_each_to_their_portal(client, cast):
    client.force_login(cast.bob)
    assert client.get("/").url == reverse("webmail:home")
    client.force_login(cast.pauline)
    assert client.get("/").url == reverse("patients:inbox")


def test_a_wrong_password_does_not_sign_in(client, cast):
    response = login(client, "alice", "pas-le-bon-mot-de-passe")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_the_login_page_invites_no_one_to_sign_up(client, db):
    html = client.get(LOGIN).content.decode()
    assert "/comptes/signup/" not in html
    assert "pas d'inscription en ligne" in html and 'name="login"' in html


def test_signup_is_closed(client, db):
    before = get_user_model().objects.count()
    response = client.post(
        "/comptes/signup/",
        {
            "username": "intrus",
            "email": "intrus@exemple.fr",
            "password1": "Un-mot-de-passe-2026",
            "password2": "Un-mot-de-passe-2026",
        },
    )
    assert response.status_code == 200
    assert "fermée" in response.content.decode() or "closed" in response.content.decode()
    assert get_user_model().objects.count() == before


def test_login_is_rate_limited_per_account(client, cast, password, settings):
    # ACCOUNT_RATE_LIMITS["login_failed"] = "…,5/5m/key": five failures, then even the right password is refused.
    for _ in range(5):
        assert "_auth_user_id" not in login(client, "alice", "mauvais-mot-de-passe").wsgi_request.session
    response = login(client, "alice", password)
    assert "_auth_user_id" not in client.session
    assert "Trop de tentatives de connexion échouées" in response.content.decode()
    # Another account is not affected.
    assert landed_on(login(client, "bob", password)) == reverse("webmail:home")


def test_password_reset_sends_an_email_with_a_working_link(client, cast, mailoutbox):
    response = client.post("/comptes/password/reset/", {"email": "alice@exemple.fr"})
    assert response.status_code == 302
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["alice@exemple.fr"]
    link = next(word for word in mail.body.split() if "/comptes/password/reset/key/" in word)
    path = "/comptes/" + link.split("/comptes/", 1)[1]
    page = client.get(path, follow=True)
    assert page.status_code == 200 and 'name="password1"' in page.content.decode()


def test_mfa_required_for_professionals_sends_them_to_totp_activation(client, cast, settings, password):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    response = login(client, "alice", password)
    # allauth asks for the password again before showing the activation page.
    assert landed_on(response) == reverse("account_reauthenticate") + "?next=" + quote(
        reverse("mfa_activate_totp"), safe=""
    )
    response = client.post(landed_on(response), {"password": password}, follow=True)
    assert landed_on(response) == reverse("mfa_activate_totp")
    assert response.status_code == 200 and 'name="code"' in response.content.decode()
    response = client.get(reverse("webmail:home"))
    assert response.status_code == 302 and response.url == reverse("mfa_activate_totp")

    # A patient is not concerned.
    client.logout()
    assert landed_on(login(client, cast.paul.username, password)) == reverse("patients:inbox")

    # A professional with TOTP enrolled goes through.
    Authenticator.objects.create(user=cast.alice, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})
    client.force_login(cast.alice)
    assert client.get(reverse("webmail:home")).status_code == 200


def test_mfa_not_required_by_default(client, cast, settings):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = False
    client.force_login(cast.alice)
    assert client.get(reverse("webmail:home")).status_code == 200


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "DJANGO_SETTINGS_MODULE", "DEBUG"))}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


PROD_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k8Zq-7vR2mN9pL4xT6wY1sB3dF5gH0jKaQeWcVbUiOpLzXnMyRt",
    "ALLOWED_HOSTS": "messagerie.ch-troispics.fr",
    "DJANGO_SETTINGS_MODULE": "mssante.settings",
}

OIDC_PROBE = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)  # allauth also looks for provider apps stored in the database
from django.conf import settings
from django.urls import reverse
from django.test import Client
from allauth.socialaccount.adapter import get_adapter
provider = get_adapter().get_provider(None, "psc")
login_page = Client().get("/comptes/login/").content.decode()
app = provider.app
print(json.dumps({
    "configured": "openid_connect" in settings.SOCIALACCOUNT_PROVIDERS,
    "provider_id": app.provider_id,
    "name": app.name,
    "client_id": app.client_id,
    "server_url": app.settings["server_url"],
    "acr_values": app.settings["auth_params"]["acr_values"],
    "pkce": settings.SOCIALACCOUNT_PROVIDERS["openid_connect"]["OAUTH_PKCE_ENABLED"],
    "login_url": reverse("openid_connect_login", kwargs={"provider_id": "psc"}),
    "button_on_login_page": 'href="/comptes/oidc/psc/login/?process=login">Pro Santé Connect</a>' in login_page,
}))
"""


def test_pro_sante_connect_is_switched_on_by_configuration(tmp_path):
    result = run_python(
        OIDC_PROBE,
        **{**PROD_ENV, "ALLOWED_HOSTS": "testserver"},
        DATABASE_URL=f"sqlite:///{tmp_path / 'oidc.sqlite3'}",
        SECURE_SSL_REDIRECT="false",
        STATICFILES_BACKEND="django.contrib.staticfiles.storage.StaticFilesStorage",
        OIDC_CLIENT_ID="mss-ch-troispics",
        OIDC_CLIENT_SECRET="secret-de-test",
        OIDC_SERVER_URL="https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "configured": True,
        "provider_id": "psc",
        "name": "Pro Santé Connect",
        "client_id": "mss-ch-troispics",
        "server_url": "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet",
        "acr_values": "eidas1",
        "pkce": True,
        "login_url": "/comptes/oidc/psc/login/",
        "button_on_login_page": True,
    }


def test_without_oidc_settings_no_provider_is_configured():
    result = run_python(
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.SOCIALACCOUNT_PROVIDERS))",
        **PROD_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}


def test_check_deploy_reports_nothing_in_production_posture():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env.update(
        PROD_ENV, SITE_URL="https://messagerie.ch-troispics.fr", DATABASE_URL="postgres://mss@db.ch-troispics.fr/mss"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PROD_ENV.items() if k != "SECRET_KEY"}
    result = run_python("import django; django.setup()", **env, SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_offline_commands_run_without_a_secret_key_and_serving_ones_do_not():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY")
    }
    env.update({k: v for k, v in PROD_ENV.items() if k != "SECRET_KEY"})
    offline = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert offline.returncode == 0, offline.stderr
    serving = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert serving.returncode != 0
    assert "SECRET_KEY" in serving.stderr
