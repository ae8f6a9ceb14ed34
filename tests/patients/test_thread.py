"""Issue 16 items 7, 8, 9: a conversation is one thread page (newest last, each message with its
documents), the closing reads as the end of the exchange, never a message titled "[FIN]";
French month names and "Ko"/"Mo" on the patient side; one navigation for messages and record."""

import re

import pytest
from django.template.defaultfilters import filesizeformat

from audit.models import AuditEvent
from patients.conversation import close_conversation
from tests.patients.conftest import PDF, inbox_of, patient_send, pro_send

pytestmark = pytest.mark.django_db

ENGLISH_MONTH = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b")
FRENCH_MONTH = re.compile(
    r"\b\d{1,2} (janv\.|févr\.|mars|avr\.|mai|juin|juil\.|août|sept\.|oct\.|nov\.|déc\.|janvier|février|avril|juillet|septembre|octobre|novembre|décembre) 20\d\d"
)


@pytest.fixture
def paul(cast, client):
    client.force_login(cast.paul)
    return client


@pytest.fixture
def exchange(cast):
    first = pro_send(
        cast.alice_box,
        cast.alice,
        cast.paul_patient.address,
        subject="Préparation de votre examen",
        text="Premier message : à jeun la veille.",
        attachments=[("consignes.pdf", "application/pdf", PDF * 40)],
    ).message
    patient_send(cast.paul_patient, cast.alice_box.address, text="Deuxième : bien reçu, merci.", in_reply_to=first)
    pro_send(
        cast.alice_box, cast.alice, cast.paul_patient.address, subject="Résultats", text="Troisième : tout va bien."
    )
    close_conversation(cast.alice_box, cast.paul_patient, cast.alice)
    return first


def test_the_conversation_is_one_thread_newest_last_with_documents_and_an_end_marker(cast, paul, exchange):
    inbox = paul.get("/patient/").content.decode()
    assert inbox.count('data-testid="conversation-link"') == 1  # one conversation, not a list of subjects
    assert "[FIN]" not in inbox and "3 messages reçus" in inbox
    entry = inbox_of(cast.paul_box).get(message=exchange)

    page = paul.get(f"/patient/echange/{entry.pk}/").content.decode()
    first, second, third = (page.index(t) for t in ("Premier message", "Deuxième", "Troisième"))
    end = page.index('data-testid="end-of-exchange"')
    assert first < second < third < end  # oldest first, the newest last
    assert page.count('data-testid="thread-message"') == 3
    assert "consignes.pdf" in page and "Enregistrer dans mes documents" in page
    assert "Fin de l’échange" in page and "a clôturé cet échange le" in page
    assert "[FIN]" not in page
    assert 'data-testid="closed-banner"' in page and 'data-testid="reply-button"' not in page

    # Everything shown is read: marked seen, audited.
    assert not inbox_of(cast.paul_box).filter(seen=False).exists()
    assert AuditEvent.objects.filter(action="message.read", actor=cast.paul).count() == 3

    closing = inbox_of(cast.paul_box).get(message__subject="[FIN]")
    alone = paul.get(f"/patient/message/{closing.pk}/").content.decode()
    assert "<h1" in alone and "Fin de l’échange</h1>" in alone and "[FIN]</h1>" not in alone


def test_an_open_exchange_offers_the_reply_to_the_latest_message(cast, paul):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="A")
    latest = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="B").message
    first = inbox_of(cast.paul_box).get(message__subject="A")
    page = paul.get(f"/patient/echange/{first.pk}/").content.decode()
    latest_entry = inbox_of(cast.paul_box).get(message=latest)
    assert f'href="/patient/message/{latest_entry.pk}/repondre" data-testid="reply-button"' in page


def test_french_month_names_and_sizes_on_the_patient_side(cast, paul, exchange):
    entry = inbox_of(cast.paul_box).get(message=exchange)
    pages = [
        paul.get("/patient/").content.decode(),
        paul.get(f"/patient/echange/{entry.pk}/").content.decode(),
        paul.get(f"/patient/message/{entry.pk}/").content.decode(),
    ]
    for page in pages:
        assert not ENGLISH_MONTH.search(re.sub(r'datetime="[^"]*"', "", page))
        assert FRENCH_MONTH.search(page)
    assert "Ko)" in pages[1].replace("\xa0", " ") and "Kio" not in pages[1]
    assert filesizeformat(3 * 1024 * 1024) == "3,0\xa0Mo"


@pytest.mark.parametrize(
    "url", ["/patient/", "/patient/parametres", "/dossier/", "/dossier/mesures/", "/dossier/documents/"]
)
def test_one_navigation_for_messages_and_record(cast, paul, url):
    page = paul.get(url).content.decode()
    nav = re.search(r'<nav class="patient-nav".*?</nav>', page, re.S).group(0)
    links = re.findall(r'<a href="([^"]+)"', nav)
    assert links == ["/patient/", "/dossier/", "/dossier/mesures/", "/dossier/documents/", "/patient/parametres"]
    assert nav.count('aria-current="page"') == 1


def test_the_thread_page_costs_the_same_queries_for_a_long_thread(cast, paul):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(count):
        for index in range(count):
            pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject=f"Message {index}")
        entry = inbox_of(cast.paul_box).first()
        paul.get(f"/patient/echange/{entry.pk}/")  # first visit marks read
        with CaptureQueriesContext(connection) as captured:
            assert paul.get(f"/patient/echange/{entry.pk}/").status_code == 200
        return len(captured.captured_queries)

    short = queries_for(3)
    long = queries_for(30)
    assert long == short, (short, long)


def test_a_second_visit_writes_only_its_read_events(cast, paul):
    """Everything already read: no UPDATE of the entries, no look-up of shared boxes (a
    patient's box is never shared), one INSERT of the visit's read events."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.models import AuditEvent

    for index in range(3):
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject=f"Message {index}")
    entry = inbox_of(cast.paul_box).first()
    paul.get(f"/patient/echange/{entry.pk}/")
    assert not inbox_of(cast.paul_box).filter(seen=False).exists()
    reads = AuditEvent.objects.filter(action=AuditEvent.Action.READ).count()
    with CaptureQueriesContext(connection) as captured:
        assert paul.get(f"/patient/echange/{entry.pk}/").status_code == 200
    statements = [q["sql"] for q in captured.captured_queries]
    assert not [s for s in statements if s.startswith('UPDATE "mailboxes_entry"')]
    assert not [s for s in statements if "mailboxes_mailbox" in s and '"kind" IN' in s]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.READ).count() == reads + 3
