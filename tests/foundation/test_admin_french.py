"""Issue 16 item 12: the administrator signing in lands on the operations dashboard; the admin
speaks French on every list and form, third-party models included; it says which default a
"Quota 0" stands for."""

import re

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.urls import reverse

from mailboxes.models import Mailbox

pytestmark = pytest.mark.django_db

OURS = {"accounts", "audit", "mailboxes", "patients", "health_record", "directory", "webmail", "automation", "api"}
OURS |= {"clients", "operations"}
SAME_IN_FRENCH = {"patient", "service", "source", "version", "message", "type", "structure", "action", "date"}
SAME_IN_FRENCH |= {"signature", "profession", "convocation", "id", "note"}
# What the admin showed in English before (issue 16), and other auto-derived labels.
ENGLISH = re.compile(
    r">\s*(Domain|Created at|Updated at|Last used at|Authenticators?|Mailbox|User|Settings|Provider|App|Account"
    r"|Token|Uid|State|Status|Created by|Opened at|Closed at|Filename|Size)\s*(\xa0:|:)?\s*<"
)


@pytest.fixture
def admin_client(client, cast):
    client.force_login(cast.ada)
    return client


def admin_models():
    models = [m for m in apps.get_models() if admin.site.is_registered(m)]
    for model in list(models):
        for inline in admin.site.get_model_admin(model).inlines:
            models.append(inline.model)
    return models


def test_our_admin_models_have_french_field_names():
    english = [
        f"{m._meta.label}.{f.name}"
        for m in admin_models()
        if m._meta.app_label in OURS
        for f in m._meta.get_fields()
        if hasattr(f, "verbose_name")
        and not f.auto_created
        and f.name not in SAME_IN_FRENCH
        and str(f.verbose_name) == f.name.replace("_", " ")
    ]
    assert english == []


def test_every_admin_list_and_form_reads_french(admin_client, cast):
    pages = ["/admin/", reverse("admin:accounts_user_change", args=[cast.alice.pk])]
    for model in apps.get_models():
        if admin.site.is_registered(model):
            name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
            pages += [reverse(f"{name}_changelist"), reverse(f"{name}_add")]
    found = {}
    for url in pages:
        response = admin_client.get(url)
        if response.status_code == 403:  # read-only lists (the audit trail) have no add page
            continue
        assert response.status_code == 200, url
        hits = ENGLISH.findall(response.content.decode())
        if hits:
            found[url] = hits
    assert found == {}
    index = admin_client.get("/admin/").content.decode()
    assert "Authenticator" not in index and "MFA" not in index


def test_second_factors_show_on_the_account_in_french(admin_client, cast):
    from allauth.mfa.models import Authenticator

    Authenticator.objects.create(user=cast.alice, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})
    page = admin_client.get(reverse("admin:accounts_user_change", args=[cast.alice.pk])).content.decode()
    assert "Double authentification (seconds facteurs)" in page
    assert "application d&#x27;authentification (TOTP)" in page
    assert "Dernière utilisation le" in page


def test_quota_zero_is_explained_and_the_default_said(admin_client, cast):
    add = admin_client.get(reverse("admin:mailboxes_mailbox_add")).content.decode()
    assert "0 ou vide : la valeur par défaut de l'opérateur, 2,0\xa0Go" in add
    response = admin_client.post(
        reverse("admin:mailboxes_mailbox_add"),
        {
            "kind": "ORG",
            "address": "accueil@ch-troispics.mssante.fr",
            "display_name": "Accueil",
            "domain": cast.d_troispics.pk,
            "structure": cast.troispics.pk,
            "responsible": cast.alice_pro.pk,
            "is_active": "on",
            "quota_bytes": "0",
            "max_message_bytes": "0",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    page = response.content.decode()
    errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', page, re.S)
    assert errors == [], errors
    box = Mailbox.objects.get(address="accueil@ch-troispics.mssante.fr")
    assert box.quota_bytes == settings.MAILBOX_DEFAULT_QUOTA
    assert "Quota laissé à 0 : la valeur par défaut, 2,0\xa0Go, a été appliquée." in page


def test_the_administrator_signing_in_lands_on_the_operations_dashboard(client, cast, password):
    response = client.post("/comptes/login/", {"login": "ada", "password": password}, follow=True)
    assert response.redirect_chain[-1][0] == "/exploitation/"
    page = response.content.decode()
    assert "État du service" in page and "aucune boîte" not in page.lower()
