"""Issue 16 item 11: a professional required to set up two-factor authentication is told why the
password is asked again, gets the QR code and the secret readable (grouped by 4) and copyable,
and the recovery-codes page says what they are for and leads back to the mail."""

import base64
import hashlib
import hmac
import re
import struct
import time

import pytest
from django.urls import reverse

from tests.foundation.test_accounts import landed_on, login

pytestmark = pytest.mark.django_db


def totp(secret: str, at: float | None = None) -> str:
    """RFC 6238 (SHA-1, 30 s, 6 digits), as the authenticator apps compute it."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def activation_secret(client, password) -> str:
    """Signs alice in with two-factor set-up required and returns the secret the page shows."""
    response = client.post(landed_on(login(client, "alice", password)), {"password": password}, follow=True)
    assert landed_on(response) == reverse("mfa_activate_totp")
    grouped = re.search(r'data-testid="mfa-secret">([A-Z2-7 ]+)</code>', response.content.decode()).group(1)
    return grouped.replace(" ", "")


def test_required_onboarding_says_why_shows_the_secret_and_leads_back_to_the_mail(client, cast, settings, password):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    response = login(client, "alice", password)
    assert landed_on(response).startswith(reverse("account_reauthenticate"))
    page = response.content.decode()
    assert 'data-testid="reauthenticate-why"' in page
    assert "Vous allez activer la double authentification" in page
    assert "même si vous venez de vous connecter" in page

    response = client.post(landed_on(response), {"password": password}, follow=True)
    assert landed_on(response) == reverse("mfa_activate_totp")
    page = response.content.decode()
    assert "Les professionnels de santé doivent protéger leur messagerie" in page
    assert 'src="data:image/svg+xml;base64,' in page and 'data-testid="mfa-qr"' in page
    grouped = re.search(r'data-testid="mfa-secret">([A-Z2-7 ]+)</code>', page).group(1)
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{1,4})+", grouped)
    secret = grouped.replace(" ", "")
    assert f'data-copy="{secret}"' in page  # the copy button copies the key without spaces
    assert "disabled" not in page  # no cut-off disabled field any more

    response = client.post(reverse("mfa_activate_totp"), {"code": totp(secret)}, follow=True)
    assert landed_on(response) == reverse("mfa_view_recovery_codes")
    page = response.content.decode()
    assert "Codes de secours" in page and 'data-testid="recovery-why"' in page
    assert "chacun de ces codes remplace une fois le code" in page
    assert 'href="/" data-testid="continue-to-mail"' in page
    assert landed_on(client.get("/", follow=True)) == reverse("webmail:home")


def test_reauthentication_for_another_change_gives_the_general_reason(client, cast, password):
    client.force_login(cast.alice)
    page = client.get(reverse("account_reauthenticate") + "?next=/comptes/2fa/").content.decode()
    assert "Vous allez modifier la sécurité de votre compte" in page


@pytest.mark.parametrize("steps_ago,accepted", [(1, True), (-1, True), (2, False)])
def test_a_code_of_the_neighbouring_step_is_accepted_an_older_one_is_not(
    client, cast, settings, password, steps_ago, accepted
):
    """A code typed as its 30 s step ends (or from a phone a few seconds off) still activates;
    one from two steps back does not (MFA_TOTP_TOLERANCE = 1, RFC 6238 §5.2)."""
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    secret = activation_secret(client, password)
    code = totp(secret, at=time.time() - 30 * steps_ago)
    response = client.post(reverse("mfa_activate_totp"), {"code": code}, follow=True)
    if accepted:
        assert landed_on(response) == reverse("mfa_view_recovery_codes")
    else:
        assert landed_on(response) == reverse("mfa_activate_totp")
        assert "Code incorrect" in response.content.decode()
