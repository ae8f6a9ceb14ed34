"""Finding a correspondent (issue 12 §2–5, issue 15 items 8 and 10): ranking, accents, filters,
hosted boxes beside national ones, liste rouge never shown, the endpoints' access, rate limit,
no search term or INS in a URL, the dematerialisation badge and the professional's choice."""

import json
import re

import pytest
from django.db import connection, transaction
from django.urls import reverse

from audit.models import AuditEvent
from directory.importer import import_extract
from directory.models import Entry
from directory.search import Criteria, complete, contains_sql, listed_sql, search, visible, visible_rows
from mailboxes.models import Mailbox
from tests.directory.conftest import row, write_rows
from tests.factories import make_ins

pytestmark = pytest.mark.django_db


@pytest.fixture
def national(tmp_path, cast):
    rows = [
        row(
            address="helene.lefevre@medecin.mssante.fr",
            last="LEFÈVRE",
            first="Hélène",
            demat="O",
            specialty=("SM54", "Cardiologie et maladies vasculaires"),
            structure="CLINIQUE DU PARC",
        ),
        row(address="paul.lefevreau@medecin.mssante.fr", last="LEFEVREAU", first="Paul", demat="N"),
        row(
            address="anne.martin@infirmier.mssante.fr",
            last="MARTIN",
            first="Anne",
            profession=("60", "Infirmier"),
            town=("73000", "CHAMBÉRY"),
        ),
        row(address="claude.dupont@medecin.mssante.fr", last="DUPONT", first="Claude", structure="MAISON LEFEVRE"),
        row(
            kind="ORG",
            address="cardiologie@ch-alpes.mssante.fr",
            service="Service de cardiologie",
            structure="CENTRE HOSPITALIER DES ALPES",
            profession=("", ""),
        ),
        row(address=cast.charlie_box.address, last="DURAND", first="Charlie"),
    ]
    import_extract(write_rows(tmp_path / "national.txt", rows))


def addresses(entries):
    return [e.address for e in entries]


def test_accents_and_case_do_not_matter_and_name_prefix_ranks_first(national):
    found = addresses(complete("lefevre"))
    assert found[:2] == ["helene.lefevre@medecin.mssante.fr", "paul.lefevreau@medecin.mssante.fr"]
    assert "claude.dupont@medecin.mssante.fr" in found  # "MAISON LEFEVRE" contains the word, ranked after
    assert addresses(complete("LEFÈVRE H")) == ["helene.lefevre@medecin.mssante.fr"]
    assert addresses(complete("Hélène cardio")) == ["helene.lefevre@medecin.mssante.fr"]
    assert addresses(complete("cardiologie@ch-a")) == ["cardiologie@ch-alpes.mssante.fr"]
    assert complete("l") == []


def test_search_page_filters_and_counts(national):
    page = search(Criteria(text="chambery"))
    assert addresses(page.results) == ["anne.martin@infirmier.mssante.fr"]
    assert page.total == 1
    assert addresses(search(Criteria(text="lefevre", profession="60")).results) == []
    assert addresses(search(Criteria(text="alpes", kind="ORG")).results) == ["cardiologie@ch-alpes.mssante.fr"]
    assert addresses(search(Criteria(text="martin", department="73")).results) == ["anne.martin@infirmier.mssante.fr"]
    # A department code typed in the box filters like the department list.
    assert addresses(search(Criteria(text="infirmier 73")).results) == ["anne.martin@infirmier.mssante.fr"]
    assert addresses(search(Criteria(text="martin 38")).results) == []
    assert "anne.martin@infirmier.mssante.fr" in addresses(search(Criteria(text="73")).results)


def test_hosted_boxes_beside_national_ones_and_liste_rouge_never_shows(national, cast):
    assert cast.alice_box.address in addresses(complete("martin"))
    hosted = Entry.objects.get(address=cast.alice_box.address)
    assert hosted.source == Entry.Source.HOSTED and hosted.profession_label == "Médecin"
    # Charlie's box is hosted here: the national row gave way to the local one.
    assert Entry.objects.get(address=cast.charlie_box.address).source == Entry.Source.HOSTED
    # A bulk update bypasses every signal: the search still re-reads the live flag.
    Mailbox.objects.filter(pk__in=[cast.charlie_box.pk, cast.cardio.pk]).update(unlisted=True)
    for text in ("durand", "charlie", "cardio", "service de cardiologie", "trois pics"):
        assert cast.charlie_box.address not in addresses(complete(text))
        assert cast.cardio.address not in addresses(complete(text))
        assert cast.charlie_box.address not in addresses(search(Criteria(text=text)).results)
    # Through the model, the mirror drops the entry at once.
    box = Mailbox.objects.get(pk=cast.alice_box.pk)
    box.unlisted = True
    box.save()
    assert not Entry.objects.filter(address=box.address).exists()


def test_the_completions_sql_rule_is_the_orms_and_closed_boxes_never_show(national, cast):
    """`listed_sql` (the completion's statements) answers what LISTED (the ORM) answers, for
    national entries and hosted boxes listed, unlisted and closed, read live from the boxes."""
    from django.db import connection

    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(unlisted=True)
    Mailbox.objects.filter(pk=cast.cardio.pk).update(is_active=False)

    def raw(table, alias, key):
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {alias}.{key} FROM {table} {alias}"
                f" LEFT JOIN mailboxes_mailbox m ON m.id = {alias}.mailbox_id WHERE {listed_sql(alias)}"
            )
            return {row[0] for row in cursor.fetchall()}

    shown = set(visible().values_list("pk", flat=True))
    assert raw("directory_entry", "e", "id") == shown
    assert raw("directory_searchrow", "s", "entry_id") == set(visible_rows().values_list("entry_id", flat=True))
    assert cast.alice_box.address in addresses(Entry.objects.filter(pk__in=shown))
    hidden = {cast.charlie_box.address, cast.cardio.address}
    assert not hidden & set(addresses(Entry.objects.filter(pk__in=shown)))
    # Every tier of the completion: name, address, contains.
    for text in ("durand", "cardiologie", "cardiologie@", "charlie@", "trois pics", "service de cardio"):
        assert not hidden & set(addresses(complete(text)))
    assert addresses(complete("alice.martin@")) == [cast.alice_box.address]


def test_a_completion_reads_the_directory_in_one_statement_per_tier(national, cast, client):
    """The name tier answers most keystrokes in one statement; the address and "contains" tiers
    read their entries with their own match (no second read of the entries by id)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(cast.alice)

    def directory_statements(text):
        with CaptureQueriesContext(connection) as queries:
            response = post_completion(client, text)
        assert response.status_code == 200
        return response.json()["results"], [q["sql"] for q in queries if "directory_" in q["sql"]]

    results, statements = directory_statements("le")  # a name prefix; too short to search inside
    assert [r["address"] for r in results] == ["helene.lefevre@medecin.mssante.fr", "paul.lefevreau@medecin.mssante.fr"]
    assert len(statements) == 1
    results, statements = directory_statements("lefevre")  # names, then the structure MAISON LEFEVRE
    assert [r["address"] for r in results][-1] == "claude.dupont@medecin.mssante.fr"
    assert len(statements) == 2
    results, statements = directory_statements("cardiologie@ch-a")  # names, then addresses
    assert [(r["address"], r["name"], r["kind_label"]) for r in results] == [
        ("cardiologie@ch-alpes.mssante.fr", "Service de cardiologie", "organisationnelle")
    ]
    assert len(statements) == 2


def post_completion(client, text):
    return client.post(reverse("directory:completion"), {"q": text})


def test_completion_answers_professionals_only_by_post(national, cast, client):
    assert post_completion(client, "lefevre").status_code == 302  # to the login page
    client.force_login(cast.paul)
    assert post_completion(client, "lefevre").status_code == 403
    client.force_login(cast.bob)
    assert client.get(reverse("directory:completion"), {"q": "lefevre"}).status_code == 405
    response = post_completion(client, "x@y.fr, lefèvre")
    assert response.status_code == 200
    data = response.json()
    assert data["term"] == "lefèvre"
    first = data["results"][0]
    assert first["address"] == "helene.lefevre@medecin.mssante.fr"
    assert first["kind"] == "PER" and first["structure"] == "CLINIQUE DU PARC"
    assert first["paper"] == {"state": "no-paper", "label": "Ne souhaite plus de papier"}
    assert data["results"][1]["paper"]["state"] == "paper"


def test_a_typed_ins_gets_its_key_checked_never_the_patients_name(cast, client):
    client.force_login(cast.alice)
    good = post_completion(client, cast.paul_patient.ins).content.decode()
    assert "Matricule INS valide." in json.loads(good)["ins"]["message"]
    assert "Lambert" not in good and "LAMBERT" not in good and "Paul" not in good
    body = make_ins(seq=4242)[:13]
    assert "15 caractères" in post_completion(client, body).json()["ins"]["message"]
    wrong = post_completion(client, body + "00").json()["ins"]
    assert wrong["valid"] is False and wrong["address"] == ""


def test_lookups_are_rate_limited_per_user(cast, client, settings):
    settings.DIRECTORY_SEARCH_RATE_PER_MINUTE = 5
    client.force_login(cast.alice)
    assert [post_completion(client, "mar").status_code for _ in range(6)] == [200] * 5 + [429]
    client.force_login(cast.bob)  # another user keeps an allowance of their own
    assert post_completion(client, "mar").status_code == 200


def test_search_page_keeps_terms_out_of_urls(national, cast, client):
    client.force_login(cast.alice)
    assert client.get(reverse("directory:search")).status_code == 200
    response = client.post(reverse("directory:search"), {"q": "Lefèvre", "kind": "PER"})
    assert response.status_code == 302
    location = response["Location"]
    assert "lef" not in location.lower() and "?r=" in location
    page = client.get(location)
    html = page.content.decode()
    assert "helene.lefevre@medecin.mssante.fr" in html and "Ne souhaite plus de papier" in html
    assert f"{reverse('webmail:compose')}?a=helene.lefevre%40medecin.mssante.fr" in html
    assert "cardiologie@ch-alpes.mssante.fr" not in html  # kind PER only
    assert client.post(reverse("directory:search"), {"q": "é"}).status_code == 400
    # A token from another session shows nothing.
    client.force_login(cast.charlie)
    assert "helene.lefevre" not in client.get(location).content.decode()


def test_search_pages_through_many_results(tmp_path, cast, client):
    rows = [row(address=f"medecin{i:02d}@medecin.mssante.fr", last=f"MOREAU{i:02d}", first="Jean") for i in range(45)]
    import_extract(write_rows(tmp_path / "many.txt", rows))
    page = search(Criteria(text="moreau"), page=3)
    assert page.total == 45 and page.number == 3 and len(page.results) == 5
    assert page.results[0].address == "medecin40@medecin.mssante.fr"
    client.force_login(cast.alice)
    location = client.post(reverse("directory:search"), {"q": "moreau"})["Location"]
    html = client.get(f"{location}&page=2").content.decode()
    assert "medecin20@" in html and "medecin19@" not in html and "page=3" in html


def test_write_to_opens_the_composer_with_the_address(cast, client):
    client.force_login(cast.alice)
    form = client.get(reverse("webmail:compose"), {"a": "helene.lefevre@medecin.mssante.fr"}).context["form"]
    assert form.initial["to"] == "helene.lefevre@medecin.mssante.fr"
    patient = f"{cast.paul_patient.ins}@patient.mssante.fr"
    assert "to" not in client.get(reverse("webmail:compose"), {"a": patient}).context["form"].initial


def test_a_professional_ticks_no_more_paper_and_every_result_says_so(national, cast, client):
    client.force_login(cast.alice)
    assert client.get(reverse("directory:preferences")).status_code == 200
    response = client.post(reverse("directory:preferences"), {"dematerialisation": "on"})
    assert response.status_code == 302
    cast.alice_pro.refresh_from_db()
    assert cast.alice_pro.dematerialisation is True
    assert Entry.objects.get(address=cast.alice_box.address).dematerialisation is True
    assert Entry.objects.get(address=cast.cardio.address).dematerialisation is True  # she is responsible
    event = AuditEvent.objects.get(action="directory.dematerialisation")
    assert event.actor == cast.alice and event.detail == {"dematerialisation": True}
    data = post_completion(client, "martin alice").json()
    assert data["results"][0]["paper"]["state"] == "no-paper"
    client.post(reverse("directory:preferences"), {})
    assert Entry.objects.get(address=cast.alice_box.address).dematerialisation is False
    client.force_login(cast.bob)  # a secretary has no choice of their own
    assert "professionnel responsable" in client.get(reverse("directory:preferences")).content.decode()
    client.force_login(cast.paul)
    assert client.get(reverse("directory:preferences")).status_code == 403


def test_contains_finds_entries_of_either_half_of_the_trigram_index(national):
    """On PostgreSQL the trigram index comes in two halves (even and odd ids, built side by side
    by an import): "contains" finds the entries of both, and each half serves its own."""
    matching = dict(Entry.objects.filter(search__search_text__contains="edeci").values_list("address", "id"))
    assert {entry_id % 2 for entry_id in matching.values()} == {0, 1}
    assert set(addresses(search(Criteria(text="edeci")).results)) == set(matching)
    assert set(addresses(complete("edeci", size=len(matching) + 1))) == set(matching)
    if connection.vendor != "postgresql":
        return
    sql = contains_sql("postgresql", 1).format(excluded="s.entry_id <> ALL(%s)")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show the indexes
        cursor.execute(f"EXPLAIN {sql}", ["%edeci%", "%edeci%", [], 8])
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "directory_search_trgm_0" in plan and "directory_search_trgm_1" in plan


def test_a_patient_sent_to_the_directory_gets_a_french_refusal_page(national, cast, client):
    """The 403 a patient gets is a page of the product in French with the reason, not Django's
    bare English "403 Forbidden"."""
    client.force_login(cast.paul)
    response = client.get(reverse("directory:search"))
    assert response.status_code == 403
    page = response.content.decode()
    assert '<html lang="fr">' in page and "Forbidden" not in page
    assert "réservé aux professionnels" in page.replace("&#x27;", "'")
    assert "lefevre" not in page.lower()


def test_a_screen_reader_hears_the_result_count_and_the_errors(national, cast, client):
    """After a search the page reloads with the focus in the search box: the count must reach a
    screen reader there (the box's description) and in the page title; an error is tied to the
    box (aria-invalid, described by the message)."""
    client.force_login(cast.bob)
    page = client.get(client.post(reverse("directory:search"), {"q": "lefevre"})["Location"]).content.decode()
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    heading = re.search(r'<h2 id="results-title">(.*?)</h2>', page, re.S).group(1).strip()
    assert heading.endswith("résultats") and title.strip().startswith(f"{heading} · ")
    box = re.search(r'<input type="search"[^>]*>', page).group(0)
    assert "results-title" in re.search(r'aria-describedby="([^"]*)"', box).group(1)
    page = client.post(reverse("directory:search"), {"q": "é"}).content.decode()
    box = re.search(r'<input type="search"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in box
    described = re.search(r'aria-describedby="([^"]*)"', box).group(1).split()
    error_id = next(i for i in described if i != "directory-q-help")
    assert re.search(rf'id="{error_id}"[^>]*>.*deux lettres', page, re.S)


def test_a_refused_lookup_says_when_to_retry(cast, client, settings):
    """HTTP 429 carries Retry-After: the seconds left in the minute's window (a script backs off,
    the page can say when)."""
    settings.DIRECTORY_SEARCH_RATE_PER_MINUTE = 1
    client.force_login(cast.alice)
    post_completion(client, "mar")
    refused = post_completion(client, "mar")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    location = client.post(reverse("directory:search"), {"q": "martin"})["Location"]
    page = client.get(location)
    assert page.status_code == 429 and 1 <= int(page["Retry-After"]) <= 60
