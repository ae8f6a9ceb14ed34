"""The quota indicator under the folder list: how full the current box is, from the box the
navigation already loaded (`webmail/quota.py`), with a warning from 90 %."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mailboxes.models import Folder, Mailbox

pytestmark = pytest.mark.django_db

GB = 1024**3


def _inbox_page(client, box):
    return client.get(reverse("webmail:folder", args=[box.pk, box.folder(Folder.Role.INBOX).pk]))


def _set_usage(box, *, used, quota):
    Mailbox.objects.filter(pk=box.pk).update(used_bytes=used, quota_bytes=quota)


def test_the_page_shows_how_full_the_current_box_is(cast, client):
    _set_usage(cast.alice_box, used=int(1.2 * GB), quota=10 * GB)
    client.force_login(cast.alice)
    html = _inbox_page(client, cast.alice_box).content.decode()
    assert "12\xa0% utilisé — 1,2\xa0Go sur 10,0\xa0Go" in html
    assert f'max="{10 * GB}" value="{int(1.2 * GB)}"' in html
    assert "quota-warning" not in html and "presque pleine" not in html


def test_it_shows_the_current_box_only(cast, client):
    _set_usage(cast.alice_box, used=int(1.2 * GB), quota=10 * GB)
    _set_usage(cast.cardio, used=3 * GB, quota=4 * GB)
    client.force_login(cast.alice)  # Alice reaches her own box and cardiologie@
    html = _inbox_page(client, cast.cardio).content.decode()
    assert "75\xa0% utilisé — 3,0\xa0Go sur 4,0\xa0Go" in html
    assert html.count('data-testid="quota"') == 1


def test_over_ninety_percent_it_warns(cast, client):
    _set_usage(cast.alice_box, used=int(9.5 * GB), quota=10 * GB)
    client.force_login(cast.alice)
    html = _inbox_page(client, cast.alice_box).content.decode()
    assert "95\xa0% utilisé — 9,5\xa0Go sur 10,0\xa0Go" in html
    assert "quota-warning" in html
    assert "Boîte presque pleine" in html
    assert f'high="{-(-10 * GB * 179 // 200)}"' in html  # 89.5 %: the bar turns when the text says 90 %


def test_the_warning_starts_when_the_text_says_ninety_percent(cast, client):
    client.force_login(cast.alice)
    _set_usage(cast.alice_box, used=int(8.94 * GB), quota=10 * GB)
    html = _inbox_page(client, cast.alice_box).content.decode()
    assert "89\xa0% utilisé" in html and "quota-warning" not in html
    _set_usage(cast.alice_box, used=int(8.96 * GB), quota=10 * GB)
    html = _inbox_page(client, cast.alice_box).content.decode()
    assert "90\xa0% utilisé" in html and "quota-warning" in html


def test_a_box_over_its_quota_keeps_the_bar_in_range_and_says_the_truth(cast, client):
    _set_usage(cast.alice_box, used=11 * GB, quota=10 * GB)
    client.force_login(cast.alice)
    html = _inbox_page(client, cast.alice_box).content.decode()
    assert "110\xa0% utilisé — 11,0\xa0Go sur 10,0\xa0Go" in html
    assert f'value="{10 * GB}"' in html and "quota-warning" in html


def test_the_indicator_costs_no_query(cast, client):
    _set_usage(cast.alice_box, used=GB, quota=10 * GB)
    client.force_login(cast.alice)
    _inbox_page(client, cast.alice_box)
    with CaptureQueriesContext(connection) as queries:
        response = _inbox_page(client, cast.alice_box)
    assert "10\xa0% utilisé" in response.content.decode()
    assert not [q["sql"] for q in queries if "used_bytes" in q["sql"] and "mailboxes_folder" not in q["sql"]]
