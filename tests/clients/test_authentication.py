"""App passwords, the second-factor rule, throttling and the audit of mail-client logins
(issue 11 §3)."""

import hashlib
import imaplib
import re
import smtplib
import time

import pytest
from allauth.mfa.models import Authenticator

from accounts.models import AppPassword
from audit.models import AuditEvent
from clients import auth
from mailboxes.models import Mailbox
from tests.factories import PASSWORD

pytestmark = pytest.mark.integration
SECRET_RE = re.compile(r"<code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code>")


def sign_in(client, username):
    response = client.post("/comptes/login/", {"login": username, "password": PASSWORD})
    assert response.status_code == 302


def create_app_password(client, name="Thunderbird du cabinet") -> str:
    response = client.post("/comptes/mots-de-passe-application/nouveau/", {"name": name})
    # Creating one is sensitive: the account password is asked again first (allauth), then the
    # creation resumes.
    assert response.status_code == 302 and response["Location"].startswith("/comptes/reauthenticate/")
    response = client.post(response["Location"], {"password": PASSWORD})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    return SECRET_RE.search(response.content.decode()).group(1)


def enable_totp(user):
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})


def test_app_password_is_shown_once_hashed_and_works_over_imap(imap, cast, client):
    sign_in(client, "alice")
    secret = create_app_password(client)
    row = AppPassword.objects.get(user=cast.alice)
    assert row.digest == hashlib.sha256(secret.replace("-", "").encode()).hexdigest()
    assert secret.replace("-", "") not in str(AppPassword.objects.values_list().get())
    page = client.get("/comptes/mots-de-passe-application/").content.decode()
    assert "Thunderbird du cabinet" in page and secret not in page
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.APP_PASSWORD_CREATED, actor=cast.alice, object_id=str(row.pk)
    ).exists()

    enable_totp(cast.alice)  # from now on the account password alone is refused
    with pytest.raises(imaplib.IMAP4.error) as refused:
        imap.client("alice", PASSWORD)
    assert "mot de passe d'application" in str(refused.value)
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.LOGIN_FAILED, actor=cast.alice, outcome="app_password_required"
    ).exists()

    session = imap.client("alice.martin@ch-troispics.mssante.fr", secret.upper())
    assert session.select("INBOX")[0] == "OK"
    row.refresh_from_db()
    assert row.last_used_at is not None
    login = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor=cast.alice).latest("id")
    assert login.detail == {"protocol": "imap", "method": "app_password", "app_password": row.pk}
    assert login.ip == "127.0.0.1"

    # Revoked mid-session: the next command ends the session.
    response = client.post(f"/comptes/mots-de-passe-application/{row.pk}/revoquer/")
    assert response.status_code == 302
    with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error)) as ended:
        session.noop()
    assert "revoque" in str(ended.value).lower() or isinstance(ended.value, imaplib.IMAP4.abort)
    with pytest.raises(imaplib.IMAP4.error):
        imap.client("alice", secret)


def test_app_passwords_page_asks_for_the_second_factor_first(client, cast, settings):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    sign_in(client, "alice")
    response = client.get("/comptes/mots-de-passe-application/")
    assert response.status_code == 302 and "totp" in response["Location"]
    assert client.post("/comptes/mots-de-passe-application/nouveau/", {"name": "x"}).status_code == 302
    assert not AppPassword.objects.exists()


def test_a_patient_has_no_app_passwords(client, cast):
    sign_in(client, cast.paul.username)
    assert client.get("/comptes/mots-de-passe-application/").status_code == 404


def test_password_refused_when_professionals_must_have_a_second_factor(imap, cast, settings):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    with pytest.raises(imaplib.IMAP4.error) as refused:
        imap.client("alice", PASSWORD)
    assert "AUTHENTICATIONFAILED" in str(refused.value)


def test_failed_logins_wait_a_growing_delay_per_account_and_per_address(imap, cast, settings):
    settings.CLIENTS_AUTH_FREE_FAILURES = 2
    settings.CLIENTS_AUTH_FAILURE_PAUSE = 0
    for _ in range(3):
        with pytest.raises(imaplib.IMAP4.error):
            imap.client("alice", "mauvais")
    until = auth.throttled_until(cast.alice.pk, None)
    assert until > time.time()
    # Even the right password is not looked at before the delay is over.
    with pytest.raises(imaplib.IMAP4.error) as refused:
        imap.client("alice", PASSWORD)
    assert "[UNAVAILABLE]" in str(refused.value)
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.LOGIN_FAILED, actor=cast.alice, outcome="throttled"
    ).exists()
    # The next failure doubles the delay (2 s after 1 s).
    first_delay = until - max(e.at.timestamp() for e in AuditEvent.objects.filter(outcome="bad_password"))
    while time.time() < auth.throttled_until(cast.alice.pk, None):
        time.sleep(0.05)
    with pytest.raises(imaplib.IMAP4.error):
        imap.client("alice", "encore-faux")
    second_delay = auth.throttled_until(cast.alice.pk, None) - time.time()
    assert second_delay > first_delay + 0.5
    while time.time() < auth.throttled_until(cast.alice.pk, "127.0.0.1"):
        time.sleep(0.05)
    assert imap.client("alice", PASSWORD).select("INBOX")[0] == "OK"
    # Unknown logins count against the address they come from.
    for _ in range(4):
        with pytest.raises(imaplib.IMAP4.error):
            imap.client("personne", "rien")
    assert auth.throttled_until(None, "127.0.0.1") > time.time()
    outcomes = set(
        AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, actor=None).values_list("outcome", flat=True)
    )
    assert outcomes == {"unknown_login", "throttled"}


def test_an_account_without_a_mailbox_is_refused_with_its_reason_over_imap_and_smtp(
    imap, make_submission, cast, settings
):
    """A professional whose only box was closed, and a staff account that never had one: the
    right password is refused with the reason (IMAP `NO [NOPERM]`, SMTP `535 5.7.8`) and a
    `login.failed` event, instead of a login onto an account with nothing in it. A wrong
    password stays the plain refusal: nothing is said of the account before its secret."""
    settings.CLIENTS_AUTH_FAILURE_PAUSE = 0
    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(is_active=False)
    submission = make_submission()
    for username, user in (("charlie", cast.charlie), ("ada", cast.ada)):
        with pytest.raises(imaplib.IMAP4.error) as refused:
            imap.client(username, PASSWORD)
        assert "[NOPERM] Aucune boite aux lettres n'est rattachee a ce compte" in str(refused.value)
        smtp = smtplib.SMTP("127.0.0.1", submission.port, timeout=10)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused_smtp:
            smtp.login(username, PASSWORD)
        smtp.close()
        assert refused_smtp.value.smtp_code == 535
        assert refused_smtp.value.smtp_error.startswith(b"5.7.8 Aucune boite aux lettres n'est rattachee")
        protocols = set(
            AuditEvent.objects.filter(
                action=AuditEvent.Action.LOGIN_FAILED, actor=user, outcome="no_mailbox"
            ).values_list("detail__protocol", flat=True)
        )
        assert protocols == {"imap", "smtp"}
        assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN, actor=user).exists()
        assert auth.throttled_until(user.pk, None) == 0.0  # the secret was right: no guess counted
    with pytest.raises(imaplib.IMAP4.error) as wrong:
        imap.client("charlie", "mauvais")
    assert "[AUTHENTICATIONFAILED] Identifiant ou mot de passe incorrect" in str(wrong.value)
    # The box back: the same password logs in.
    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(is_active=True)
    assert imap.client("charlie", PASSWORD).select("INBOX")[0] == "OK"
