"""The admin names objects with French dates (« 1 décembre 2026 », « 01/12/2026 »), read in
local time, never the ISO form (2026-12-01) nor the UTC hour."""

import datetime

import pytest
from django.urls import reverse

from audit.models import AuditChain, AuditSeal
from directory.models import ImportRun
from operations.models import DailyStat, Heartbeat

pytestmark = pytest.mark.django_db

# 1 December 2026, 8:30 UTC: 9 h 30 in Paris.
AT = datetime.datetime(2026, 12, 1, 8, 30, tzinfo=datetime.UTC)
DAY = datetime.date(2026, 12, 1)


@pytest.fixture
def admin_client(client, cast):
    client.force_login(cast.ada)
    return client


def page_text(admin_client, url) -> str:
    response = admin_client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_a_directory_import_is_named_by_its_french_local_date(admin_client):
    run = ImportRun.objects.create(source="annuaire.txt", status=ImportRun.Status.DONE)
    ImportRun.objects.filter(pk=run.pk).update(started_at=AT)
    text = page_text(admin_client, reverse("admin:directory_importrun_change", args=[run.pk]))
    assert "import du 1 décembre 2026 à 9 h 30 (terminé)" in text
    assert "2026-12-01" not in text and "08:30" not in text
    text = page_text(admin_client, reverse("admin:directory_importrun_delete", args=[run.pk]))
    assert "import du 1 décembre 2026 à 9 h 30 (terminé)" in text


def test_a_heartbeat_is_named_by_its_french_local_date(admin_client):
    Heartbeat.objects.create(name="beat", at=AT)
    text = page_text(admin_client, reverse("admin:operations_heartbeat_change", args=["beat"]))
    assert "beat : 1 décembre 2026 à 9 h 30" in text
    assert "2026-12-01" not in text


def test_a_daily_seal_reads_its_day_in_french_in_the_list_and_on_its_page(admin_client):
    seal = AuditSeal.objects.create(day=DAY, hash="a" * 64)
    text = page_text(admin_client, reverse("admin:audit_auditseal_changelist"))
    assert "01/12/2026" in text and "2026-12-01" not in text
    text = page_text(admin_client, reverse("admin:audit_auditseal_change", args=[seal.pk]))
    assert "scellement du 1 décembre 2026 (aaaaaaaaaaaa)" in text
    assert "2026-12-01" not in text


def test_objects_outside_the_admin_lists_are_named_in_french_too():
    assert str(AuditChain(day=DAY, partition=3)) == "chaîne 3 du 1 décembre 2026"
    assert str(DailyStat(day=DAY, metric="sent", value=4)) == "1 décembre 2026 sent=4"
