"""Importing the national extract (issue 12 §1): the exact format, the diff, refusals, atomicity."""

import io
import threading
import zipfile

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line

from audit.models import AuditEvent
from bench.directory_extract import HEADER
from directory import extract as extract_format
from directory.importer import ImportRefused, import_extract
from directory.models import Entry, ImportRun
from directory.search import Criteria, search
from tests.directory.conftest import row, write_rows

pytestmark = pytest.mark.django_db


def snapshot():
    return list(
        Entry.objects.order_by("address").values_list("address", "exercises", "search__search_text", "search__name_key")
    )


def test_full_import_keeps_every_exercise_under_its_address(extract):
    path, expected = extract(rows=900, crlf=True)
    run = import_extract(path)
    assert run.status == ImportRun.Status.DONE
    assert run.lines == expected.rows == 900
    assert run.added == run.entries == expected.addresses == Entry.objects.count()
    several = [e for e in Entry.objects.all() if len(e.exercise_rows()) > 1]
    assert several, "the generator writes addresses on several rows"
    for entry in several:
        assert all(len(cells) == len(extract_format.COLUMNS) for cells in entry.exercise_rows())
        assert {cells[extract_format.ADDRESS].lower() for cells in entry.exercise_rows()} == {entry.address}
    assert AuditEvent.objects.filter(action="directory.imported", object_id=str(run.pk), outcome="done").exists()


def test_reimport_with_one_percent_changes_reports_exactly_those(extract, tmp_path):
    first, _ = extract(rows=3000)
    import_extract(first)
    changed_path, expected = extract(rows=3000, name="changed.txt", changes=0.01)
    assert expected.added and expected.changed and expected.removed
    run = import_extract(changed_path)
    assert (run.added, run.changed, run.removed) == (
        len(expected.added),
        len(expected.changed),
        len(expected.removed),
    )
    assert set(run.samples["added"]) == expected.added
    assert set(run.samples["changed"]) == expected.changed
    assert set(run.samples["removed"]) == expected.removed
    assert not Entry.objects.filter(address__in=expected.removed).exists()
    assert Entry.objects.filter(address__in=expected.added).count() == len(expected.added)
    again = import_extract(changed_path)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, again.entries)


def test_zipped_extract_as_published(extract, tmp_path):
    path, expected = extract(rows=300, zipped=True, name="Extraction_Correspondance_MSSante.zip")
    assert zipfile.is_zipfile(path)
    run = import_extract(path)
    assert run.added == expected.addresses


def test_the_import_equals_the_python_reference_on_awkward_names(awkward):
    """On PostgreSQL the rows are built in SQL (directory/staging.py); elsewhere in Python. Either
    way each entry is what `extract.build_row` makes of its first row."""
    import_extract(awkward)
    with open(awkward, "rb") as stream:
        reference, pieces = {}, {}
        for staged in extract_format.read_rows(stream, lambda rejected: None):
            reference.setdefault(staged.address, staged)
            pieces.setdefault(staged.address, []).append(staged.search_piece)
    assert set(reference) == set(Entry.objects.values_list("address", flat=True))
    for entry in Entry.objects.all():
        staged = reference[entry.address]
        for field in ("kind", "last_name", "first_name", "structure_name", "street", "postcode", "town", "department"):
            assert getattr(entry, field) == getattr(staged, field), (entry.address, field)
        assert entry.search.name_key == staged.name_key
        # The searched text as Python flattens it (but a non-breaking space: NFKD makes it a
        # space, `unaccent` keeps it; search matches each word alone, so either separates them).
        searched = entry.search.search_text.replace("\u00a0", " ")
        assert searched == " ".join(pieces[entry.address]), entry.address
        assert entry.dematerialisation == staged.dematerialisation
    lefevre = Entry.objects.get(address="helene.lefevre@medecin.mssante.fr")
    assert lefevre.search.name_key == "lefevre helene"
    assert len(lefevre.exercise_rows()) == 2 and "chambery" in lefevre.search.search_text
    assert Entry.objects.get(address__startswith="jean-pierre").search.name_key == "dartagnan jean pierre"
    goff = Entry.objects.get(address="marc.le-goff@infirmier.mssante.fr")
    assert goff.search.name_key == "le goff jean marc" and goff.department == "2A"
    assert Entry.objects.get(address__startswith="oeuvrard").department == "971"
    assert Entry.objects.get(kind="ORG").search.name_key == "service de cardiologie"


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (HEADER.replace("|Dématérialisation", "") + "\n", 1, "l'en-tête n'a pas la colonne « Dématérialisation »"),
        (
            HEADER
            + "\n"
            + "|".join(row(address="a@b.mssante.fr"))
            + "\n"
            + "|".join(row(address="c@d.mssante.fr")[:30])
            + "\n",
            3,
            "30 colonnes au lieu de 31",
        ),
        (
            HEADER
            + "\n"
            + "|".join(row(address="a@b.mssante.fr"))
            + "\n"
            + "|".join(row(address="c@d.mssante.fr"))[:90],
            3,
            "fichier semble tronqué",
        ),
        (
            HEADER
            + "\n"
            + "|".join(row(address="a@b.mssante.fr", last="DUPONT")).replace("DUPONT", "DUP\udcffONT")
            + "\n",
            2,
            "UTF-8",
        ),
    ],
    ids=["missing-column", "30-columns", "truncated", "not-utf8"],
)
def test_malformed_files_are_refused_whole_and_the_directory_stays(extract, tmp_path, content, line, reason):
    path, _ = extract(rows=200)
    import_extract(path)
    before = snapshot()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(ImportRefused) as refused:
        import_extract(bad)
    assert f"ligne {line} :" in str(refused.value) and reason in str(refused.value)
    assert snapshot() == before
    run = ImportRun.objects.get(pk=refused.value.run.pk)
    assert run.status == ImportRun.Status.REFUSED and reason in run.error


def test_header_by_name_in_any_order_extra_columns_ignored(tmp_path):
    names = HEADER.split("|")
    order = list(reversed(range(len(names))))
    cells = row(address="zoe.martin@medecin.mssante.fr", last="MARTIN", first="Zoé")
    path = tmp_path / "reordered.txt"
    path.write_text(
        "|".join([names[i] for i in order] + ["Colonne future"])
        + "\n"
        + "|".join([cells[i] for i in order] + ["x"])
        + "\n",
        encoding="utf-8",
    )
    run = import_extract(path)
    assert run.added == 1
    entry = Entry.objects.get()
    assert (entry.last_name, entry.first_name, entry.town) == ("MARTIN", "Zoé", "GRENOBLE")
    assert entry.exercise_rows()[0] == cells


def test_unusable_rows_are_reported_with_their_line_and_the_rest_imported(tmp_path):
    rows = [
        row(address="ok@medecin.mssante.fr", last="BON"),
        row(address="", last="SANS"),
        row(address="pas une adresse", last="FAUX"),
        row(kind="XYZ", address="x@medecin.mssante.fr", last="TYPE"),
        row(address="d@medecin.mssante.fr", last="DEMAT", demat="peut-être"),
        row(kind="XYZ", address="twice@medecin.mssante.fr", last="PREMIER"),
        row(address=" Twice@medecin.mssante.fr", last="SECOND"),
    ]
    path = write_rows(tmp_path / "rows.txt", rows)
    with open(path, "a", encoding="utf-8") as out:
        out.write("\n")
    run = import_extract(path)
    assert run.added == 2 and run.rejected == 6
    assert [(item["line"], item["reason"]) for item in run.rejected_lines] == [
        (3, "adresse BAL vide"),
        (4, "adresse BAL invalide « pas une adresse »"),
        (5, "type de BAL inconnu « XYZ » (attendu : PER, ORG, APP, CAB)"),
        (6, "valeur de dématérialisation inconnue « peut-être »"),
        (7, "type de BAL inconnu « XYZ » (attendu : PER, ORG, APP, CAB)"),
        (9, "ligne vide"),
    ]
    # The first row of an address was rejected: the next one stands for it.
    twice = Entry.objects.get(address="twice@medecin.mssante.fr")
    assert twice.last_name == "SECOND" and len(twice.exercise_rows()) == 1


def test_a_file_that_would_empty_the_directory_needs_force(extract, settings):
    full, _ = extract(rows=400)
    import_extract(full)
    half, _ = extract(rows=150, name="half.txt")
    before = snapshot()
    with pytest.raises(ImportRefused, match="retirerait"):
        import_extract(half)
    assert snapshot() == before
    run = import_extract(half, force=True)
    assert run.removed == len(before) - run.entries


def test_hosted_boxes_keep_their_local_data_even_unlisted(cast, tmp_path):
    from mailboxes.models import Mailbox

    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(unlisted=True)
    rows = [
        row(address=cast.alice_box.address, last="MARTIN", first="Alice (national)"),
        row(address=cast.charlie_box.address, last="DURAND", first="Charlie"),
        row(address="autre@medecin.mssante.fr", last="AUTRE"),
    ]
    run = import_extract(write_rows(tmp_path / "hosted.txt", rows))
    assert (run.added, run.hosted) == (1, 2)
    alice = Entry.objects.get(address=cast.alice_box.address)
    assert alice.source == Entry.Source.HOSTED and alice.first_name == "Alice"
    assert not Entry.objects.filter(address=cast.charlie_box.address).exists()


def test_command_prints_the_report_and_refuses_with_the_line(extract, tmp_path):
    path, expected = extract(rows=120)
    out = io.StringIO()
    call_command("import_annuaire", str(path), stdout=out)
    assert f"{expected.addresses} ajoutée(s)" in out.getvalue()
    bad = tmp_path / "bad.txt"
    bad.write_text(HEADER + "\n" + "a|b\n", encoding="utf-8")
    with pytest.raises(CommandError, match="ligne 2 : 2 colonnes au lieu de 31"):
        call_command("import_annuaire", str(bad), stdout=io.StringIO())
    with pytest.raises(CommandError, match="introuvable"):
        call_command("import_annuaire", str(tmp_path / "absent.txt"))


def test_the_command_runs_without_the_system_checks(extract, monkeypatch, capsys):
    """A nightly data job, like the scheduled task: a failing system check does not stop it."""
    from django.core import checks
    from django.core.management.base import SystemCheckError

    def failing(**kwargs):
        return [checks.Error("contrôle en échec", id="tests.E001")]

    registry = checks.registry.registry
    monkeypatch.setattr(registry, "registered_checks", {*registry.registered_checks, failing})
    with pytest.raises(SystemCheckError):
        call_command("check")
    path, expected = extract(rows=60)
    execute_from_command_line(["manage.py", "import_annuaire", str(path)])  # as cron runs it
    assert f"{expected.addresses} ajoutée(s)" in capsys.readouterr().out


def test_demo_extract_imports():
    out = io.StringIO()
    call_command("import_annuaire", "--demo", stdout=out)
    assert Entry.objects.filter(source=Entry.Source.NATIONAL).count() >= 20
    assert "0 ligne(s) rejetée(s)" in out.getvalue()


def _schema():
    """The directory tables' indexes and constraints as Django's introspection sees them, and
    on PostgreSQL their extended statistics (migration 0004)."""
    from django.db import connection

    tables = ("directory_entry", "directory_searchrow")
    with connection.cursor() as cursor:
        schema = {table: connection.introspection.get_constraints(cursor, table) for table in tables}
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT stxrelid::regclass::text, stxname FROM pg_statistic_ext "
                "WHERE stxrelid::regclass::text = ANY(%s) ORDER BY 1, 2",
                [list(tables)],
            )
            schema["statistics"] = cursor.fetchall()
    return schema


def test_a_large_import_puts_back_every_index_and_key_it_dropped(extract):
    """The first import is a large change: on PostgreSQL it drops the search indexes, the address
    index and the foreign keys to the entries, and builds them again before its commit."""
    before = _schema()
    path, expected = extract(rows=600)
    run = import_extract(path)
    assert run.added == expected.addresses
    assert _schema() == before
    names = set(before["directory_entry"]) | set(before["directory_searchrow"])
    assert {"directory_address_unique", "directory_name_c"} <= names
    assert any(c["foreign_key"] == ("directory_entry", "id") for c in before["directory_searchrow"].values())
    if "statistics" in before:  # PostgreSQL
        assert {"directory_search_trgm_0", "directory_search_trgm_1"} <= names
        assert before["statistics"] == [("directory_searchrow", "directory_search_half")]


def _serial_sequence():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('directory_entry', 'id')")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_large_import_swaps_in_new_tables_while_the_directory_stays_readable(cast, extract, monkeypatch):
    """Outside a transaction on PostgreSQL, a large import builds the new directory beside the
    live one and swaps it in: same schema as the migrations made, hosted boxes kept, and the
    old directory readable (no lock wait) while the new one's indexes are built."""
    from django.db import connection, connections

    from directory import swap

    postgres = connection.vendor == "postgresql"  # elsewhere: the one-transaction path
    before = _schema()
    sequence = _serial_sequence() if postgres else None
    first, _ = extract(rows=600)
    import_extract(first)
    old = snapshot()
    seen = []
    build = swap.build_next

    def build_while_reading(*args):
        def read():
            with connections["default"].cursor() as cursor:
                cursor.execute("SET lock_timeout = '2s'")
                cursor.execute("SELECT count(*) FROM directory_entry")
                seen.append(cursor.fetchone()[0])
            connections["default"].close()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        build(*args)

    monkeypatch.setattr(swap, "build_next", build_while_reading)
    second, expected = extract(rows=600, name="second.txt", changes=0.5)
    run = import_extract(second)
    assert ("swap" in run.phases) == postgres
    assert seen == ([len(old)] if postgres else [])
    assert (run.added, run.changed, run.removed) == (len(expected.added), len(expected.changed), len(expected.removed))
    assert _schema() == before
    assert (_serial_sequence() if postgres else None) == sequence
    alice = Entry.objects.get(address=cast.alice_box.address)
    assert alice.source == Entry.Source.HOSTED and alice.search.name_key
    assert Entry.objects.count() == Entry.objects.filter(search__isnull=False).count()
    assert not Entry.objects.filter(address__in=expected.removed).exists()
    assert not [name for name in connection.introspection.table_names() if name.endswith("_next")]
    again = import_extract(second)
    assert (again.added, again.changed, again.removed) == (0, 0, 0)


def _found(text: str) -> set[str]:
    """Every address a search page lists for the words of `text` (numbers left out: "38" among
    words is a department filter), page after page."""
    text = " ".join(word for word in text.split() if word.isalpha())
    found, number = set(), 1
    while True:
        page = search(Criteria(text=text), page=number)
        found |= {entry.address for entry in page.results}
        if not page.has_next:
            return found
        number += 1


@pytest.mark.django_db(transaction=True)
def test_a_large_reimport_keeps_changed_entries_ids_and_searches_see_the_new_directory(extract):
    """A re-import of many changes (the swap on PostgreSQL): a changed entry keeps its id, and
    "contains" search finds the added and changed entries by their new text, never a removed one."""
    first, _ = extract(rows=600)
    import_extract(first)
    ids = dict(Entry.objects.values_list("address", "id"))
    old_text = dict(Entry.objects.values_list("address", "search__search_text"))
    second, expected = extract(rows=600, name="second.txt", changes=0.5)
    run = import_extract(second)
    assert run.changed == len(expected.changed) > 0
    kept = dict(Entry.objects.filter(address__in=expected.changed).values_list("address", "id"))
    assert kept == {address: ids[address] for address in expected.changed}
    for address in sorted(expected.changed)[:5] + sorted(expected.added)[:5]:
        entry = Entry.objects.select_related("search").get(address=address)
        assert address in _found(entry.search.search_text)
    for address in sorted(expected.removed)[:5]:
        assert address not in _found(old_text[address])


@pytest.mark.django_db(transaction=True)
def test_a_worker_connection_with_prepared_reads_reads_the_new_directory_after_a_swap(extract):
    """A gunicorn worker keeps its connection, and with server-side binding its statements are
    prepared after DB_PREPARE_THRESHOLD runs. When a large import swaps new tables in (the old
    ones dropped), that connection's next completion and count read the new directory, without
    an error. (Elsewhere the import keeps its one-transaction path: the same reads follow it.)"""
    from django.db import connection, connections

    from directory.search import complete

    first, _ = extract(rows=600)
    import_extract(first)
    prepared, imported, results, errors = threading.Event(), threading.Event(), [], []

    def worker():
        def read():
            national = Entry.objects.filter(source=Entry.Source.NATIONAL).count()
            return national, [entry.address for entry in complete("mar")]

        try:
            for _ in range(8):  # past DB_PREPARE_THRESHOLD (5)
                results.append(read())
            prepared.set()
            assert imported.wait(60)
            results.append(read())
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
            prepared.set()
        finally:
            connections["default"].close()

    thread = threading.Thread(target=worker)
    thread.start()
    assert prepared.wait(60)
    second, _ = extract(rows=600, name="second.txt", changes=0.5)
    run = import_extract(second)
    imported.set()
    thread.join(60)
    assert not errors
    assert ("swap" in run.phases) == (connection.vendor == "postgresql")
    expected = (
        Entry.objects.filter(source=Entry.Source.NATIONAL).count(),
        [entry.address for entry in complete("mar")],
    )
    assert results[-1] == expected and results[-1] != results[0]


def test_cells_with_backslashes_and_tabs_inside_are_kept_as_they_are(tmp_path):
    """The rows reach PostgreSQL as COPY text: a backslash, a tab inside a cell survive."""
    cells = row(address="back\\slash@medecin.mssante.fr", last="TAB\tINSIDE", first="A\\B")
    path = write_rows(tmp_path / "escapes.txt", [cells, row(address="plain@medecin.mssante.fr", last="PLAIN")])
    run = import_extract(path)
    assert run.added == 2 and run.rejected == 0
    entry = Entry.objects.get(address="back\\slash@medecin.mssante.fr")
    assert (entry.last_name, entry.first_name) == ("TAB\tINSIDE", "A\\B")
    assert entry.exercise_rows() == [cells]


def small_blocks(monkeypatch, size=300):
    """The reader takes the file in blocks of whole lines: make them a line or two long."""
    monkeypatch.setattr(extract_format, "BLOCK", size)


def test_lines_across_blocks_are_read_whole_and_counted(extract, monkeypatch):
    small_blocks(monkeypatch)
    path, expected = extract(rows=120, crlf=True)
    run = import_extract(path)
    assert run.lines == expected.rows == 120 and run.added == expected.addresses
    assert all(len(e.exercise_rows()[0]) == len(extract_format.COLUMNS) for e in Entry.objects.all())


@pytest.mark.parametrize("size", [300, 1 << 20])
def test_the_first_fault_in_file_order_refuses_the_file(tmp_path, monkeypatch, size):
    """A wrong cell count before a line that is not UTF-8, in one block or across blocks, is
    the reason given; a truncated last line is found whatever the block."""
    small_blocks(monkeypatch, size)
    good = ["|".join(row(address=f"p{i}@medecin.mssante.fr", last="NOM")) for i in range(6)]
    short = "|".join(row(address="court@medecin.mssante.fr")[:29])
    bad = "|".join(row(address="x@medecin.mssante.fr", last="DUP\udcffONT"))
    path = tmp_path / "faults.txt"
    path.write_bytes(("\n".join([HEADER, *good, short, bad, *good]) + "\n").encode("utf-8", "surrogateescape"))
    with pytest.raises(ImportRefused, match="ligne 8 : 29 colonnes au lieu de 31"):
        import_extract(path)
    path.write_bytes(("\n".join([HEADER, *good, bad, short]) + "\n").encode("utf-8", "surrogateescape"))
    with pytest.raises(ImportRefused, match="ligne 8 : octets qui ne sont pas de l'UTF-8"):
        import_extract(path)
    path.write_bytes(("\n".join([HEADER, *good, *good])).encode())
    with pytest.raises(ImportRefused, match="ligne 13 : dernière ligne incomplète") as refused:
        import_extract(path)
    assert ImportRun.objects.get(pk=refused.value.run.pk).lines == 12


def _directory():
    """Every entry's columns and its search row, ids aside, in address order."""
    columns = [field.attname for field in Entry._meta.concrete_fields if field.attname != "id"]
    return sorted(
        Entry.objects.values_list(*columns, "search__name_key", "search__search_text", "search__mailbox_id"),
        key=lambda values: values[0],
    )


@pytest.mark.django_db(transaction=True)
def test_a_first_import_gives_what_a_compared_import_gives(cast, extract):
    """Into a directory without national entries nothing is compared (every address not hosted
    here is added): the same entries, search rows, counts, samples and rejected lines as the
    same file compared with a directory of one other national entry; a re-import after it
    finds nothing to change. (PostgreSQL: both through the swap, first without the compare.)"""
    from django.db import connection

    path, expected = extract(rows=600)
    with open(path, "a", encoding="utf-8") as out:  # lines 602 and 603, after the 600 rows
        out.write("|".join(row(address=cast.alice_box.address, last="MARTIN", first="Alice (national)")) + "\n")
        out.write("|".join(row(address="", last="SANS")) + "\n")
    first = import_extract(path)
    assert ("search rows" in first.phases) == (connection.vendor == "postgresql")  # swapped in
    directory = _directory()
    assert (first.added, first.changed, first.removed, first.unchanged, first.hosted) == (
        expected.addresses,
        0,
        0,
        0,
        1,
    )
    assert first.rejected_lines == [{"line": 603, "reason": "adresse BAL vide"}]
    assert first.samples["added"] == sorted(first.samples["added"])
    assert len(first.samples["added"]) == 50 and cast.alice_box.address not in first.samples["added"]
    assert Entry.objects.get(address=cast.alice_box.address).source == Entry.Source.HOSTED
    again = import_extract(path)
    assert (again.added, again.changed, again.removed, again.unchanged, again.hosted) == (
        0,
        0,
        0,
        expected.addresses,
        1,
    )
    assert _directory() == directory

    Entry.objects.all().delete()
    Entry.objects.create(address="ailleurs@medecin.mssante.fr", kind=Entry.Kind.NOMINATIVE, exercises="")
    compared = import_extract(path, force=True)
    assert (compared.added, compared.changed, compared.removed, compared.unchanged, compared.hosted) == (
        first.added,
        0,
        1,
        0,
        1,
    )
    assert (compared.rejected, compared.rejected_lines) == (first.rejected, first.rejected_lines)
    assert compared.samples["added"] == first.samples["added"]
    assert _directory() == directory


def _awkward_file(tmp_path, cast, extra_rows):
    """Header in another order with an extra column, CRLF; names with accents, apostrophes,
    hyphens, non-breaking spaces; cells to trim; a backslash and a tab inside cells; two
    exercises of one box; a box hosted here (unlisted) and a rejected row; then `extra_rows`."""
    names = HEADER.split("|")
    order = [*range(1, len(names)), 0]  # the box kind last
    rows = [
        row(
            address="helene.lefevre@medecin.mssante.fr",
            last="LEFÈVRE",
            first="Hélène",
            demat="O",
            specialty=("SM54", "Cardiologie et maladies vasculaires"),
            structure="CENTRE HOSPITALIER DES ALPES",
        ),
        row(
            address="Helene.Lefevre@medecin.mssante.fr",
            last="LEFÈVRE",
            first="Hélène",
            demat="O",
            structure="CLINIQUE DU PARC",
            town=("73000", "CHAMBÉRY"),
        ),
        row(address="jean-pierre.dartagnan@medecin.mssante.fr", last="D'ARTAGNAN", first="Jean-Pierre", demat="n"),
        row(
            address="marc.le-goff@infirmier.mssante.fr",
            last="LE\u00a0GOFF",
            first=" Jean\u00a0Marc ",
            profession=("60", "Infirmier"),
            town=("20000", "AJACCIO"),
        ),
        row(
            address="oeuvrard@pharmacien.mssante.fr",
            last="ŒUVRARD",
            first="Zoé",
            profession=("21", "Pharmacien"),
            town=("97110", "POINTE-À-PITRE"),
        ),
        row(address="back\\slash@medecin.mssante.fr", last="TAB\tINSIDE", first="A\\B", town=("", "LIEU DIT 38000")),
        row(
            kind="ORG",
            address="cardiologie@ch-alpes.mssante.fr",
            service="Service de cardiologie",
            structure="CENTRE HOSPITALIER DES ALPES",
            profession=("", ""),
        ),
        row(
            kind="APP",
            address="envois@ch-alpes.mssante.fr",
            structure="",
            service="",
            profession=("", ""),
            street=("", "", ""),
            town=("", ""),
        ),
        row(address=cast.charlie_box.address, last="DURAND", first="Charlie (national)"),
        row(address="", last="SANS"),
        *extra_rows,
    ]
    path = tmp_path / "awkward-first.txt"
    lines = ["|".join([names[i] for i in order] + ["Colonne future"])]
    lines += ["|".join([cells[i] for i in order] + ["x"]) for cells in rows]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


@pytest.mark.django_db(transaction=True)
def test_a_first_import_staged_as_cells_builds_what_a_compared_import_builds(cast, tmp_path):
    """A first import (no national entry yet) stages each cell as a column and builds from
    them, where a compared import takes the staged exercises apart: the same entries, search
    rows, counts, rejected lines and search results, swapped in (PostgreSQL) or built in the
    caller's transaction; a re-import of the same file changes nothing."""
    from django.db import connection, transaction

    from mailboxes.models import Mailbox

    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(unlisted=True)
    extra = [row(address=f"p{i}@medecin.mssante.fr", last=f"NOM{i % 7}", first="Prénom") for i in range(40)]
    path = _awkward_file(tmp_path, cast, extra)
    queries = ["lefevre", "chambery", "dartagnan", "goff", "oeuvrard", "cardiologie", "inside", "nom3", "durand"]

    def results():
        return {q: [e.address for e in search(Criteria(text=q)).results] for q in queries}

    first = import_extract(path)
    assert ("search rows" in first.phases) == (connection.vendor == "postgresql")  # swapped in
    directory, found = _directory(), results()
    counts = (first.added, first.changed, first.removed, first.unchanged, first.hosted, first.rejected)
    assert counts == (47, 0, 0, 0, 1, 1)
    assert first.rejected_lines == [{"line": 11, "reason": "adresse BAL vide"}]
    assert not Entry.objects.filter(address=cast.charlie_box.address).exists()  # liste rouge
    assert found["lefevre"] == ["helene.lefevre@medecin.mssante.fr"] == found["chambery"]
    assert found["inside"] == ["back\\slash@medecin.mssante.fr"]
    again = import_extract(path)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 47)
    assert _directory() == directory

    Entry.objects.filter(source=Entry.Source.NATIONAL).delete()
    with transaction.atomic():  # a caller's transaction: built there, no swap
        inside = import_extract(path)
    assert "search rows" not in inside.phases
    assert (inside.added, inside.hosted, inside.rejected_lines) == (47, 1, first.rejected_lines)
    assert _directory() == directory and results() == found

    Entry.objects.filter(source=Entry.Source.NATIONAL).delete()
    Entry.objects.create(address="ailleurs@medecin.mssante.fr", kind=Entry.Kind.NOMINATIVE, exercises="")
    compared = import_extract(path, force=True)  # compared with one other national entry
    assert (compared.added, compared.removed, compared.hosted) == (47, 1, 1)
    assert compared.samples["added"] == first.samples["added"]
    assert _directory() == directory and results() == found


@pytest.mark.django_db(transaction=True)
def test_a_refused_first_import_leaves_the_directory_and_nothing_staged(cast, tmp_path):
    """A first import refused after some rows were staged as cells (a wrong cell count, a cut
    last line, a removal check cannot apply): nothing of it is left, the hosted entries stay."""
    from django.db import connection

    before = snapshot()
    assert before and not Entry.objects.filter(source=Entry.Source.NATIONAL).exists()
    good = [row(address=f"p{i}@medecin.mssante.fr", last="NOM") for i in range(30)]
    short = write_rows(tmp_path / "short.txt", [*good, row(address="court@medecin.mssante.fr")[:30], *good])
    with pytest.raises(ImportRefused, match="ligne 32 : 30 colonnes au lieu de 31"):
        import_extract(short)
    cut = tmp_path / "cut.txt"
    cut.write_bytes(write_rows(tmp_path / "whole.txt", good).read_bytes()[:-40])
    with pytest.raises(ImportRefused, match="ligne 31 : dernière ligne incomplète"):
        import_extract(cut)
    assert snapshot() == before
    staged = {"directory_rows", "directory_repeats", "directory_later", "directory_new", "directory_diff"}
    names = set(connection.introspection.table_names(include_views=True))
    assert not staged & names and not [name for name in names if name.endswith("_next")]
    assert import_extract(tmp_path / "whole.txt").added == 30  # and the next first import goes through


@pytest.mark.django_db(transaction=True)
def test_a_failure_while_building_the_new_tables_leaves_the_directory_and_nothing_staged(extract, monkeypatch):
    """A swapping import commits its staged rows for the connections that build the new
    directory side by side; one of them failing (here the entries') fails the import: the
    directory stays as it was, and neither the staged nor the new tables are left."""
    from django.db import connection

    from directory import swap

    path, _ = extract(rows=300)
    import_extract(path)
    before = snapshot()

    def failing(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(swap, "fill_entries", failing)
    second, expected = extract(rows=300, name="second.txt", changes=0.5)
    if connection.vendor == "postgresql":
        with pytest.raises(RuntimeError, match="disk full"):
            import_extract(second)
        assert snapshot() == before
        assert ImportRun.objects.latest("pk").status == ImportRun.Status.FAILED
    else:  # the one-transaction path builds no new tables
        assert import_extract(second).removed == len(expected.removed)
    staged = {"directory_rows", "directory_repeats", "directory_later", "directory_new", "directory_diff"}
    names = set(connection.introspection.table_names(include_views=True))
    assert not staged & names
    assert not [name for name in names if name.endswith("_next")]


def test_an_empty_zip_archive_is_refused_as_holding_no_file(extract, tmp_path):
    """A ZIP without any member starts with the end-of-archive record (PK\\x05\\x06), not a local
    file header: it must still be read as a ZIP and refused for what it is."""
    path, _ = extract(rows=50)
    import_extract(path)
    before = snapshot()
    empty = tmp_path / "Extraction_Correspondance_MSSante.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(ImportRefused, match=r"un seul fichier \(elle en contient 0\)"):
        import_extract(empty)
    assert snapshot() == before


def test_a_zip_damaged_inside_its_data_is_refused_and_the_directory_stays(extract, tmp_path):
    """The archive's directory is intact but the member's bytes are not (CRC error while reading)."""
    path, _ = extract(rows=300)
    import_extract(path)
    before = snapshot()
    zipped = tmp_path / "damaged.zip"
    with zipfile.ZipFile(zipped, "w") as archive:  # stored: the member's bytes are the file's
        archive.writestr("Extraction_Correspondance_MSSante.txt", path.read_bytes())
    data = bytearray(zipped.read_bytes())
    middle = len(data) // 2
    data[middle] = ord("x") if data[middle] != ord("x") else ord("y")
    zipped.write_bytes(bytes(data))
    with pytest.raises(ImportRefused, match="archive ZIP") as refused:
        import_extract(zipped)
    assert snapshot() == before
    assert ImportRun.objects.get(pk=refused.value.run.pk).status == ImportRun.Status.REFUSED


def test_an_unreadable_path_is_refused_with_a_french_reason(extract, tmp_path):
    path, _ = extract(rows=50)
    import_extract(path)
    before = snapshot()
    with pytest.raises(ImportRefused, match="illisible") as refused:
        import_extract(tmp_path)  # a folder: open() fails as for a file without read permission
    assert snapshot() == before
    assert ImportRun.objects.get(pk=refused.value.run.pk).status == ImportRun.Status.REFUSED
