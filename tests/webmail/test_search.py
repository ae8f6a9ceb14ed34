"""Search in a box: full text over subject, body, sender, recipients and attachment names
(PostgreSQL full-text search, LIKE on SQLite, over documents folded without accents or case),
with its filters. The documents are written by the indexer off the ingest path (issue 17): the
tests run its task, `webmail.index_search`, the function the scheduler calls."""

import datetime

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Entry, Message
from webmail.tasks import index_search_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def box(cast, send, received):
    """cardiologie@ holds: the referral (PDF, unread), a follow-up from Alice (read, no attachment)."""
    other = send(
        cast.alice_box,
        cast.alice,
        to=[cast.cardio.address],
        subject="Planning des consultations",
        text="Les rendez-vous de décembre sont confirmés.",
    )
    entry = Entry.objects.get(mailbox=cast.cardio, message=other.message)
    Entry.objects.filter(pk=entry.pk).update(seen=True, received_at=timezone.now() - datetime.timedelta(days=10))
    assert index_search_task() == 2
    return {"referral": received, "planning": entry}


def search(client, url, **params):
    """The search as the page runs it: the form is POSTed, the results read at the token URL."""
    posted = client.post(url, params)
    if posted.status_code == 200:  # the form refused the criteria and says why
        return posted
    assert posted.status_code == 302 and "?r=" in posted["Location"]
    return client.get(posted["Location"])


def found(client, cast, **params):
    response = search(client, reverse("webmail:search", args=[cast.cardio.pk]), **params)
    assert response.status_code == 200
    page = response.context["page"]
    return {row.entry.message.subject for row in page.rows} if page else None


@pytest.mark.parametrize(
    "query",
    ["Adressage", "échographie", "courrier", "Durand", "rendez-vous décembre"],
)
def test_text_matches_subject_body_attachment_and_sender(cast, client, box, query):
    client.force_login(cast.bob)
    expected = {"Planning des consultations"} if "décembre" in query else {"Adressage de M. Lambert"}
    assert found(client, cast, q=query) == expected


def test_no_match_says_so(cast, client, box):
    client.force_login(cast.bob)
    response = search(client, reverse("webmail:search", args=[cast.cardio.pk]), q="introuvable")
    assert "Aucun message ne correspond" in response.content.decode()


def test_filters(cast, client, box):
    client.force_login(cast.bob)
    assert found(client, cast, unread="on") == {"Adressage de M. Lambert"}
    assert found(client, cast, attachments="on") == {"Adressage de M. Lambert"}
    assert found(client, cast, sender="alice.martin") == {"Planning des consultations"}
    today = timezone.localdate()
    assert found(client, cast, since=(today - datetime.timedelta(days=2)).isoformat()) == {"Adressage de M. Lambert"}
    assert found(client, cast, until=(today - datetime.timedelta(days=5)).isoformat()) == {"Planning des consultations"}
    assert found(client, cast) is None  # nothing asked, nothing listed


def test_inverted_dates_are_explained(cast, client, box):
    client.force_login(cast.bob)
    response = search(client, reverse("webmail:search", args=[cast.cardio.pk]), since="2026-05-02", until="2026-05-01")
    assert "La date de début est après la date de fin." in response.content.decode()


def test_search_follows_the_store(cast, send):
    """What is stored is found (attachment names included), what is deleted is not; on
    PostgreSQL through the stored documents kept by triggers."""
    from webmail.search import Criteria, search_page

    result = send(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="Holter",
        attachments=[("holter-rythmique.pdf", "application/pdf", b"%PDF-1.4 h")],
    )

    def found(word):
        return [r.entry.message_id for r in search_page(cast.charlie_box, Criteria(text=word)).rows]

    assert found("rythmique") == []  # not indexed yet: the delivery transaction only queued it
    assert index_search_task() == 1

    assert found("rythmique") == found("holter") == found("Martin") == [result.message.pk]
    result.message.delete()
    assert found("rythmique") == []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM webmail_message_search WHERE message_id = %s", [result.message.pk])
            assert cursor.fetchone()[0] == 0


def test_results_are_paged_by_keyset(cast, client):
    from tests.webmail.conftest import bulk_entries

    entries = bulk_entries(cast.alice_box, 70, subject="Bilan")
    index_search_task()
    client.force_login(cast.alice)
    url = reverse("webmail:search", args=[cast.alice_box.pk])
    results = client.post(url, {"q": "Bilan"})["Location"]
    first = client.get(results).context["page"]
    assert len(first.rows) == 50 and first.next_cursor and first.prev_cursor is None
    second = client.get(f"{results}&apres={first.next_cursor}").context["page"]
    assert [r.entry.pk for r in second.rows] == [e.pk for e in reversed(entries)][50:]
    assert second.next_cursor is None
    back = client.get(f"{results}&avant={second.prev_cursor}").context["page"]
    assert [r.entry.pk for r in back.rows] == [r.entry.pk for r in first.rows]


def test_search_terms_stay_out_of_urls(cast, client, box):
    """Issue 15 item 10: the form is POSTed; the results live at a session token."""
    client.force_login(cast.bob)
    url = reverse("webmail:search", args=[cast.cardio.pk])
    response = client.post(url, {"q": "Lambert", "unread": "on"})
    assert response.status_code == 302
    location = response["Location"]
    assert "Lambert" not in location and "?r=" in location
    page = client.get(location).context["page"]
    assert {row.entry.message.subject for row in page.rows} == {"Adressage de M. Lambert"}
    client.force_login(cast.alice)  # another session: the token means nothing there
    assert client.get(location).context["page"] is None
    assert 'method="post"' in client.get(url).content.decode()


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("échographie", "echographie"),
        ("echographie", "échographie"),
        ("Échographie", "ECHOGRAPHIE"),
        ("ÉLECTROCARDIOGRAMME", "électrocardiogramme"),
        ("cœur", "coeur"),
        ("coeur", "CŒUR"),
        ("Hôpital Saint-Éloi", "hopital saint eloi"),
    ],
)
def test_search_ignores_accents_and_case_both_ways(cast, send, stored, asked):
    """Issue 16 item 6, on the database the suite runs on (SQLite and PostgreSQL in CI)."""
    from webmail.search import Criteria, search_page

    in_subject = send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject=f"Résultat {stored}")
    in_body = send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Suite", text=f"Voir {stored}.")
    send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Autre", text="Rien à voir.")
    index_search_task()
    rows = search_page(cast.charlie_box, Criteria(text=asked)).rows
    assert {r.entry.message_id for r in rows} == {in_subject.message.pk, in_body.message.pk}


def test_the_delivery_only_queues_and_the_indexer_catches_up(cast, send, settings):
    """The delivery transaction writes no search document (the message row is the queue); the
    indexer writes them in batches and clears the flag; `reindex_search` queues and rebuilds."""
    from django.core.management import call_command

    from webmail.search import Criteria, search_page

    settings.SEARCH_INDEX_BATCH = 2
    sent = [
        send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject=f"Lot {i} scintigraphie")
        for i in range(5)
    ]
    ids = {r.message.pk for r in sent}
    assert set(Message.objects.filter(search_pending=True).values_list("pk", flat=True)) >= ids
    assert search_page(cast.charlie_box, Criteria(text="scintigraphie")).rows == []
    assert index_search_task() >= 5  # three batches of at most 2
    assert not Message.objects.filter(search_pending=True).exists()
    assert {r.entry.message_id for r in search_page(cast.charlie_box, Criteria(text="scintigraphie")).rows} == ids
    assert index_search_task() == 0

    settings.SEARCH_BODY_CHARS = 4
    call_command("reindex_search")
    assert not Message.objects.filter(search_pending=True).exists()
    # Still found by subject; the body beyond the bound is no longer indexed.
    assert len(search_page(cast.charlie_box, Criteria(text="scintigraphie")).rows) == 5
    assert search_page(cast.charlie_box, Criteria(text="compte")).rows == []  # "Bonjour,\nvoici le compte rendu."


def test_the_scheduler_runs_the_indexer(cast, send):
    """The embedded runner (`manage.py runscheduler`) has the indexer among its jobs, every
    SEARCH_INDEX_INTERVAL_SECONDS: it is both the worker and the sweeper of the queue."""
    from django.conf import settings

    from mssante.celery import app
    from operations.scheduler import jobs_from_settings, run_due
    from webmail.search import Criteria, search_page

    jobs = [job for job in jobs_from_settings(app) if job.task == "webmail.index_search"]
    assert len(jobs) == 1 and settings.CELERY_BEAT_SCHEDULE["webmail-index-search"]["schedule"] <= 5
    send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Coronarographie")
    ran, _ = run_due(app, jobs, force=True)
    assert ran == ["webmail-index-search"]
    assert len(search_page(cast.charlie_box, Criteria(text="coronarographie")).rows) == 1


def test_terms_in_the_query_string_are_never_read(cast, client, box):
    """Issue 15 item 10: `?q=` (a bookmark, a script, an old link) searches nothing and is not
    echoed back; the person sees the empty search form."""
    client.force_login(cast.bob)
    url = reverse("webmail:search", args=[cast.cardio.pk])
    response = client.get(url, {"q": "Lambert", "sender": "charlie"})
    assert response.status_code == 200 and response.context["page"] is None
    page = response.content.decode()
    assert "Saisissez un mot ou choisissez un filtre pour rechercher." in page
    assert "Lambert" not in page and "Adressage" not in page
    assert client.get(url, {"r": "jeton-inconnu", "q": "Lambert"}).context["page"] is None


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Compte Rendu", "compte rendu"),
        ("Échographie du CŒUR", "echographie du coeur"),
        ("Œdème, Æsculape, Straße, ẞ", "oedeme, aesculape, strasse, ss"),
        ("Hôpital Saint-Éloi", "hopital saint-eloi"),
        ("e\u0301lectrocardiogramme", "electrocardiogramme"),  # already decomposed
        ("ﬁbrillation ①", "fibrillation 1"),  # compatibility forms
    ],
)
def test_fold_lowers_and_drops_accents(text, folded):
    """The fold shared by the documents, the queries, IMAP SEARCH and box rules; ASCII text takes
    the short way (`lower()`), the rest NFKD without combining marks, ligatures spelt out."""
    from webmail.search_index import fold

    assert fold(text) == folded


def test_a_long_body_is_searchable_by_its_first_4000_characters(cast, send):
    """The documented bound (docs/webmail.md, "What a search can miss"): words in the first
    SEARCH_BODY_CHARS characters of the body are found, a word only after them is not; the
    subject always is."""
    from django.conf import settings

    from webmail.search import Criteria, search_page

    assert settings.SEARCH_BODY_CHARS == 4000
    filler = "Texte du compte rendu, ligne de soixante-douze caracteres environ, pour le test.\n" * 28
    text = "Anamnese : dyspnee.\n" + filler + "Conclusion : angioplastie.\n" + filler + "Annexe : scintigraphie.\n"
    assert text.index("angioplastie") < 3_900 and text.index("scintigraphie") > 4_100
    sent = send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Coronarographie", text=text)
    index_search_task()

    def hits(word):
        return {r.entry.message_id for r in search_page(cast.charlie_box, Criteria(text=word)).rows}

    for word in ("dyspnee", "angioplastie", "coronarographie"):
        assert hits(word) == {sent.message.pk}
    assert hits("scintigraphie") == set()
