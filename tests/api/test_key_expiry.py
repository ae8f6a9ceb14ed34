"""API keys expire (issue p25): a key gets `expires_at` at creation, `API_KEY_LIFETIME_DAYS`
after it; the admin shows and edits it, marks the keys that expire within 30 days, and
audits a change of it; an expired key is refused `401 key_expired`, said in French, not taken
for an unknown key. Through HTTP: the API with the key, the admin pages as Ada."""

import datetime

import pytest
from django.utils import timezone

from api.models import ApiKey
from audit.models import AuditEvent
from tests.api.conftest import make_key
from tests.api.test_access_and_errors import problem


def listing(api_client, box):
    return api_client.get(f"/api/v1/boxes/{box.address}/messages")


def expire(key, **delta):
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + datetime.timedelta(**delta))


def test_an_expired_key_is_refused_as_expired_not_as_unknown(cast, api, client_for):
    assert listing(api.call, api.box).status_code == 200
    expire(api.key, seconds=-1)
    body = problem(listing(api.call, api.box), 401, "key_expired")
    assert body["title"] == "Clé d'API expirée"
    assert body["detail"].startswith("Cette clé d'API a expiré le ") and "administrateur" in body["detail"]
    # Sending is refused alike, and an unknown key is still an unknown key.
    sent = api.call.post("/api/v1/messages", {"to": [cast.alice_box.address], "subject": "S", "text": "T"})
    problem(sent, 401, "key_expired")
    problem(listing(client_for("mss_000000000000_nope"), api.box), 401, "invalid_key")
    # A key that expires later works until then.
    expire(api.key, days=1)
    assert listing(api.call, api.box).status_code == 200


def test_a_key_alone_by_its_certificate_is_told_it_expired(cast, app_box, client_for, settings):
    settings.API_CLIENT_CERT_HEADER = "X-SSL-Client-SHA256"
    old, _ = make_key(app_box, name="ancienne", client_cert_fingerprint="ab:cd:ef")
    certificate_only = client_for(None)
    headers = {"X-SSL-Client-SHA256": "ABCDEF"}
    assert certificate_only.get(f"/api/v1/boxes/{app_box.address}/messages", headers=headers).status_code == 200
    expire(old, days=-1)
    problem(certificate_only.get(f"/api/v1/boxes/{app_box.address}/messages", headers=headers), 401, "key_expired")
    # The key that replaces it, on the same certificate, is the one taken.
    make_key(app_box, name="nouvelle", client_cert_fingerprint="ab:cd:ef")
    assert certificate_only.get(f"/api/v1/boxes/{app_box.address}/messages", headers=headers).status_code == 200


def add_key(client, box, **extra):
    return client.post(
        "/admin/api/apikey/add/",
        {"mailbox": box.pk, "name": "SIL", "can_send": "on", "can_read": "on", "rate_per_minute": 0, **extra},
    )


@pytest.mark.parametrize("days", [365, 30])
def test_a_new_key_expires_after_the_configured_lifetime(cast, app_box, client, settings, days):
    settings.API_KEY_LIFETIME_DAYS = days
    client.force_login(cast.ada)
    form = client.get("/admin/api/apikey/add/").content.decode()
    assert "Expire le" in form and "API_KEY_LIFETIME_DAYS" in form
    before = timezone.now()
    assert add_key(client, app_box).status_code == 200
    key = ApiKey.objects.get(name="SIL")
    lifetime = datetime.timedelta(days=days)
    assert before + lifetime <= key.expires_at <= timezone.now() + lifetime


def test_the_admin_sets_the_expiry_and_the_change_is_audited(cast, app_box, client, api):
    client.force_login(cast.ada)
    response = add_key(client, app_box, name="RIS", expires_at_0="2027-03-01", expires_at_1="08:00:00")
    assert response.status_code == 200, response.content[:2000]
    key = ApiKey.objects.get(name="RIS")
    assert timezone.localtime(key.expires_at).replace(tzinfo=None) == datetime.datetime(2027, 3, 1, 8, 0)
    change = client.post(
        f"/admin/api/apikey/{api.key.pk}/change/",
        {
            "mailbox": api.box.pk,
            "name": api.key.name,
            "can_send": "on",
            "can_read": "on",
            "rate_per_minute": 0,
            "webhook_enabled": "on",
            "expires_at_0": "2020-01-01",
            "expires_at_1": "00:00:00",
        },
    )
    assert change.status_code == 302, change.content[:3000]
    event = AuditEvent.objects.filter(
        action=AuditEvent.Action.ADMIN_CHANGE, object_type="apikey", object_id=str(api.key.pk)
    ).get()
    assert event.actor == cast.ada and event.detail["fields"] == ["Expire le"]
    problem(listing(api.call, api.box), 401, "key_expired")


def test_the_key_list_marks_keys_that_expire_within_30_days(cast, app_box, client):
    soon, _ = make_key(app_box, name="Bientôt")
    expire(soon, days=12, hours=1)
    later, _ = make_key(app_box, name="Plus tard")
    expire(later, days=200)
    gone, _ = make_key(app_box, name="Passée")
    expire(gone, days=-3)
    client.force_login(cast.ada)
    page = client.get("/admin/api/apikey/").content.decode()
    assert "⚠ expire dans 12 jours" in page and "expirée le" in page
    assert page.count("api-key-expires-soon") == 1 and page.count("api-key-expired") == 1
    filtered = client.get("/admin/api/apikey/", {"expiration": "soon"}).content.decode()
    assert "Bientôt" in filtered and "Plus tard" not in filtered and "Passée" not in filtered
    assert "expirent dans les 30 jours" in filtered
