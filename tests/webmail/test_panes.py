"""The three panes: boxes with folders and unread counts, the list by keyset, empty states."""

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from mailboxes.models import Folder
from tests.webmail.conftest import bulk_entries

pytestmark = pytest.mark.django_db


def test_landing_lists_the_users_boxes_and_their_folders(cast, client, received):
    client.force_login(cast.alice)
    response = client.get(reverse("webmail:home"))
    assert response.status_code == 200
    text = response.content.decode()
    assert cast.alice_box.address in text
    assert cast.cardio.address in text
    assert cast.charlie_box.address not in text
    assert "Boîte de réception" in text and "Corbeille" in text


def test_unread_count_and_bold_row(cast, client, received):
    client.force_login(cast.bob)
    inbox = cast.cardio.folder(Folder.Role.INBOX)
    response = client.get(reverse("webmail:folder", args=[cast.cardio.pk, inbox.pk]))
    html = response.content.decode()
    assert re.search(r'Boîte de réception <span class="count">1<', html)
    assert '<tr class="unread' in html
    assert "Adressage de M. Lambert" in html
    assert 'aria-label="pièce jointe"' in html
    assert "Dr Charlie DURAND" in html


def test_reading_marks_read_and_count_drops(cast, client, received):
    client.force_login(cast.bob)
    client.get(reverse("webmail:message", args=[received.pk]))
    received.refresh_from_db()
    assert received.seen
    inbox = cast.cardio.folder(Folder.Role.INBOX)
    html = client.get(reverse("webmail:folder", args=[cast.cardio.pk, inbox.pk])).content.decode()
    assert not re.search(r'Boîte de réception <span class="count">', html)


def test_keyset_pages_walk_forward_and_back(cast, client):
    entries = bulk_entries(cast.alice_box, 120)
    client.force_login(cast.alice)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    url = reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])
    first = client.get(url).context
    rows = [r.entry.pk for r in first["page"].rows]
    assert len(rows) == 50
    assert rows[0] == entries[-1].pk  # newest first
    assert first["page"].prev_cursor is None
    second = client.get(url, {"apres": first["page"].next_cursor}).context["page"]
    assert [r.entry.pk for r in second.rows] == [e.pk for e in reversed(entries)][50:100]
    third = client.get(url, {"apres": second.next_cursor}).context["page"]
    assert len(third.rows) == 20 and third.next_cursor is None
    back = client.get(url, {"avant": third.prev_cursor}).context["page"]
    assert [r.entry.pk for r in back.rows] == [r.entry.pk for r in second.rows]


def test_queries_per_page_do_not_grow_with_the_page(cast, client):
    client.force_login(cast.alice)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    url = reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])
    bulk_entries(cast.alice_box, 3, subject="Peu")
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    bulk_entries(cast.alice_box, 80, subject="Beaucoup", thread_key="<fil@x>")
    with CaptureQueriesContext(connection) as many:
        response = client.get(url)
    assert len(response.context["page"].rows) == 50
    assert len(many) <= len(few) + 1  # + the thread-size query, once per page
    assert len(many) <= 12


def test_thread_messages_are_grouped_under_the_first(cast, client, send):
    first = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Bilan")
    send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Autre sujet")
    send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="RE : Bilan", in_reply_to=first.message)
    client.force_login(cast.alice)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    page = client.get(reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])).context["page"]
    subjects = [(r.entry.message.subject, r.child, r.thread_size) for r in page.rows]
    assert subjects == [("RE : Bilan", False, 2), ("Bilan", True, 2), ("Autre sujet", False, 1)]


def test_empty_states(cast, client):
    client.force_login(cast.alice)
    trash = cast.alice_box.folder(Folder.Role.TRASH)
    html = client.get(reverse("webmail:folder", args=[cast.alice_box.pk, trash.pk])).content.decode()
    assert "La corbeille est vide." in html


def test_user_without_box_sees_an_explanation(cast, client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="nouvelle"))
    response = client.get(reverse("webmail:home"))
    assert "Aucune boîte aux lettres" in response.content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("webmail:home"))
    assert response.status_code == 302 and "/comptes/login/" in response["Location"]


def test_pager_loads_the_list_pane_alone(cast, client):
    bulk_entries(cast.alice_box, 60)
    client.force_login(cast.alice)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    url = reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])
    full = client.get(url).content.decode()
    assert 'hx-target="#list-pane"' in full and "Mes boîtes aux lettres" in full
    partial = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="list-pane").content.decode()
    assert "<html" not in partial and "Mes boîtes aux lettres" not in partial
    assert partial.count("<tr") == 51 and "Suivants" in partial  # the header row and 50 messages


def test_list_escapes_subjects_and_names(cast, client, send):
    send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject='<img src=x onerror="alert(1)">')
    client.force_login(cast.alice)
    html = client.get(reverse("webmail:home")).content.decode()
    assert '<img src=x onerror="alert(1)">' not in html and "<img" not in html
    # Shown as text, escaped (the rows' Jinja2 partial writes `"` as &#34;, Django as &quot;).
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert '<img src=x onerror="alert(1)">' in unescape(html)


def test_sent_folder_lists_recipients_with_patient_names(cast, client, send):
    send(cast.alice_box, cast.alice, to=[cast.paul_patient.address], subject="Consignes")
    client.force_login(cast.alice)
    sent = cast.alice_box.folder(Folder.Role.SENT)
    html = client.get(reverse("webmail:folder", args=[cast.alice_box.pk, sent.pk])).content.decode()
    assert f"Paul LAMBERT ({cast.paul_patient.address})" in html


def test_left_pane_follows_access_changes_between_pages(cast, client):
    """The navigation query is compiled once per user and connection, but run on every page:
    a membership removed (or given) shows on the very next page, links included."""
    from mailboxes.models import Membership

    client.force_login(cast.bob)
    inbox = cast.cardio.folder(Folder.Role.INBOX)
    folder_url = reverse("webmail:folder", args=[cast.cardio.pk, inbox.pk])
    html = client.get(reverse("webmail:home")).content.decode()
    assert cast.cardio.address in html
    assert f'href="{folder_url}"' in html
    assert f'href="{reverse("webmail:mailbox", args=[cast.cardio.pk])}"' in html

    Membership.objects.filter(mailbox=cast.cardio, user=cast.bob).delete()
    html = client.get(reverse("webmail:home")).content.decode()
    assert cast.cardio.address not in html
    assert client.get(folder_url).status_code == 404

    Membership.objects.create(mailbox=cast.cardio, user=cast.bob)
    html = client.get(folder_url).content.decode()
    assert cast.cardio.address in html and 'aria-current="page"' in html


def _page_signature(page):
    return (
        [
            (r.entry.pk, r.entry.message.subject, r.entry.message.to, r.thread_size, r.child, r.entry.seen)
            for r in page.rows
        ],
        page.next_cursor,
        page.prev_cursor,
        page.is_first,
    )


def test_folder_page_matches_the_orm_page_in_every_box_and_direction(cast, send):
    """`folder_page` (values read in one query, rows built by `from_db`) returns what the
    ORM page does: first page, older, newer, threads, another box, a sent folder."""
    from webmail.selectors import folder_page, list_entries, page_of

    bulk_entries(cast.alice_box, 70, thread_key="fil-a")
    bulk_entries(cast.cardio, 60, seen=False)
    send(cast.alice_box, cast.alice, to=[cast.paul_patient.address], subject="Consignes")
    for box, role in (
        (cast.alice_box, Folder.Role.INBOX),
        (cast.cardio, Folder.Role.INBOX),
        (cast.alice_box, Folder.Role.SENT),
    ):
        folder = box.folder(role)
        first = folder_page(box, folder)
        assert first.rows
        assert _page_signature(first) == _page_signature(page_of(list_entries(box, folder), box))
        if first.next_cursor:
            older = folder_page(box, folder, after=first.next_cursor)
            orm_older = page_of(list_entries(box, folder), box, after=first.next_cursor)
            assert _page_signature(older) == _page_signature(orm_older)
            newer = folder_page(box, folder, before=older.prev_cursor)
            assert _page_signature(newer) == _page_signature(first)
    assert folder_page(cast.alice_box, cast.alice_box.folder(Folder.Role.INBOX)).rows[0].thread_size == 70


def test_the_list_shows_the_time_today_the_day_this_year_and_the_full_date_before():
    import datetime as dt

    from webmail.rows import short_date

    today = dt.date(2026, 11, 22)
    assert short_date(dt.datetime(2026, 11, 22, 9, 5), today) == "9 h 05"
    assert short_date(dt.datetime(2026, 2, 3, 9, 5), today) == "3 fév."
    assert short_date(dt.datetime(2025, 12, 31, 9, 5), today) == "31/12/2025"


def test_each_row_shows_its_own_date_and_time(cast):
    """Rows sharing a day share its formatting; today's rows each keep their own time."""
    import datetime as dt

    from django.utils import timezone

    from webmail.rows import prepare, short_date
    from webmail.selectors import folder_page

    now = timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)
    long_ago = now - dt.timedelta(days=400)
    bulk_entries(cast.alice_box, 3, start=long_ago, subject="Ancien")
    bulk_entries(cast.alice_box, 3, start=now - dt.timedelta(minutes=30), subject="Récent")
    page = folder_page(cast.alice_box, cast.alice_box.folder(Folder.Role.INBOX))
    prepare(page.rows, recipients=False)
    shown = [(row.entry.message.subject, row.cells["when"]) for row in page.rows]
    today = timezone.localdate()
    expected = [
        (row.entry.message.subject, short_date(timezone.localtime(row.entry.received_at), today)) for row in page.rows
    ]
    assert shown == expected
    assert [when for subject, when in shown if subject.startswith("Récent")] == ["11 h 32", "11 h 31", "11 h 30"]
    assert len({when for subject, when in shown if subject.startswith("Ancien")}) == 1


def test_the_list_pane_alone_counts_no_unread_messages(cast, client):
    """The list pane (pager, new-mail reload) has no left pane: its navigation asks the database
    for no count; the full page still shows them, and both give the same boxes and folders."""
    bulk_entries(cast.alice_box, 3, seen=False)
    client.force_login(cast.alice)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    url = reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])
    with CaptureQueriesContext(connection) as full_queries:
        full = client.get(url)
    with CaptureQueriesContext(connection) as pane_queries:
        pane = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="list-pane")
    assert [q for q in full_queries if "NOT ur.seen" in q["sql"]]
    assert not [q for q in pane_queries if "NOT ur.seen" in q["sql"]]
    assert len(pane_queries) == len(full_queries)
    assert full.context["unread_total"] == 3 and '<span class="count">3<' in full.content.decode()
    assert [(n.mailbox.pk, [i.folder.pk for i in n.folders]) for n in pane.context["nav"]] == [
        (n.mailbox.pk, [i.folder.pk for i in n.folders]) for n in full.context["nav"]
    ]
    assert pane.context["move_targets"] and "Déplacer vers" in pane.content.decode()
