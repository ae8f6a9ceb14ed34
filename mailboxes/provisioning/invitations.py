"""The account invitation (RULES.md §5: no password travels by e-mail): a provisioned account
without a password gets a link to choose one. One template triple
(`templates/emails/account_invitation_*`), sent by a task after the provisioning commits."""

from __future__ import annotations

from celery import signature
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

TEMPLATE = "emails/account_invitation"


def password_setup_url(user) -> str:
    from allauth.account.forms import default_token_generator
    from allauth.account.utils import user_pk_to_url_str

    key = default_token_generator.make_token(user)
    path = reverse("account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": key})
    return f"{settings.SITE_URL}{path}"


def queue_account_invitation(user_id: int) -> None:
    """After commit (a rolled-back provisioning sends nothing), by the task of that name."""
    transaction.on_commit(
        lambda: signature("mailboxes.tasks.send_account_invitation", args=(user_id,)).delay(), robust=True
    )


def send_account_invitation(user_id: int) -> bool:
    """Invite a provisioned account without a password to choose one (no health content).
    Nothing for an account gone, without an e-mail address, or with a password by now."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not user.email or user.has_usable_password():
        return False
    context = {"username": user.username, "setup_url": password_setup_url(user), "site_url": settings.SITE_URL}
    subject = " ".join(render_to_string(f"{TEMPLATE}_subject.txt", context).split())
    email = EmailMultiAlternatives(
        subject, render_to_string(f"{TEMPLATE}_body.txt", context), settings.DEFAULT_FROM_EMAIL, [user.email]
    )
    email.attach_alternative(render_to_string(f"{TEMPLATE}_body.html", context), "text/html")
    email.send()
    return True
