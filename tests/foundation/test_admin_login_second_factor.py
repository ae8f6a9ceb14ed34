"""An administrator who enrolled a second factor cannot reach the admin with the password alone.

Found deploying from the docs: the Django admin's own login form (`/admin/login/`) checked the
password and opened a full admin session, without the TOTP code that the sign-in page asks
(RULES.md §5). Its URL now leads to the sign-in page, and back to the admin page asked for."""

import re
from urllib.parse import quote

import pytest
from django.urls import reverse

from tests.foundation.test_accounts import landed_on, login
from tests.foundation.test_mfa_onboarding import totp

pytestmark = pytest.mark.django_db


def enrol_second_factor(client, password) -> str:
    """ada (staff, superuser) signs in, is sent to the activation and enrols a TOTP."""
    response = client.post(landed_on(login(client, "ada", password)), {"password": password}, follow=True)
    assert landed_on(response) == reverse("mfa_activate_totp")
    grouped = re.search(r'data-testid="mfa-secret">([A-Z2-7 ]+)</code>', response.content.decode()).group(1)
    secret = grouped.replace(" ", "")
    response = client.post(reverse("mfa_activate_totp"), {"code": totp(secret)}, follow=True)
    assert landed_on(response) == reverse("mfa_view_recovery_codes")
    client.post(reverse("account_logout"))
    return secret


def test_the_admin_login_form_does_not_skip_the_second_factor(client, cast, settings, password):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    secret = enrol_second_factor(client, password)
    admin_index = reverse("admin:index")
    assert client.get(admin_index)["Location"].startswith(reverse("admin:login"))

    # The password alone posted to the admin's form: no session.
    client.post(reverse("admin:login"), {"username": "ada", "password": password, "next": admin_index})
    assert client.get(admin_index).status_code == 302
    assert "_auth_user_id" not in client.session

    # The admin's login URL leads to the sign-in page, which asks for the code, then to the admin.
    response = client.get(f"{reverse('admin:login')}?next={admin_index}")
    assert response["Location"] == f"{reverse('account_login')}?next={quote(admin_index, safe='')}"
    response = client.post(response["Location"], {"login": "ada", "password": password}, follow=True)
    assert landed_on(response) == reverse("mfa_authenticate")
    assert client.get(admin_index).status_code == 302
    response = client.post(reverse("mfa_authenticate"), {"code": totp(secret)}, follow=True)
    assert landed_on(response) == admin_index and response.status_code == 200
    # Signed in, the admin's login URL goes on to the admin (Django's own behaviour).
    assert client.get(reverse("admin:login"))["Location"] == admin_index


def test_a_signed_in_professional_is_refused_the_admin_in_french(client, cast, password):
    login(client, "alice", password)
    response = client.get(reverse("admin:index"), follow=True)
    assert response.status_code == 403
    assert landed_on(response).startswith(reverse("admin:login"))
    assert "Accès refusé" in response.content.decode()
    assert "_auth_user_id" in client.session  # still signed in to her mail
