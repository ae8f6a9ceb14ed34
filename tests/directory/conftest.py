"""Helpers of the directory tests: synthetic extracts from bench/directory_extract.py (the same
generator the benchmark uses) and small hand-written ones."""

import pytest

from bench import directory_extract
from bench.directory_extract import HEADER

# A few hand-written rows with the awkward cases side by side (31 cells each).
EMPTY_ADDRESS_CELLS = ["", "", "", "", "", "", "", "", "", "", ""]


def row(
    kind="PER",
    address="",
    last="",
    first="",
    profession=("10", "Médecin"),
    specialty=("", ""),
    demat="",
    structure="",
    service="",
    town=("38000", "GRENOBLE"),
    street=("12", "R", "DES ALPES"),
    department="",
):
    number, street_type, street_name = street
    postcode, town_name = town
    return [
        kind,
        address,
        "8" if kind == "PER" else "",
        "",
        "",
        "FINESS",
        "380780015",
        service,
        "DR" if kind == "PER" else "",
        last,
        first,
        "C" if kind == "PER" else "",
        "",
        profession[0],
        profession[1],
        specialty[0],
        specialty[1],
        demat,
        structure,
        "",
        "",
        "",
        number,
        "",
        street_type,
        street_name,
        "",
        f"{postcode} {town_name}".strip(),
        postcode,
        department,
        "FRANCE",
    ]


def write_rows(path, rows, *, header=HEADER, ending="\n"):
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(header + ending)
        for cells in rows:
            out.write("|".join(cells) + ending)
    return path


@pytest.fixture
def extract(tmp_path):
    """extract(rows=600, **options) -> (path, Expected), from the benchmark's generator."""

    def _extract(rows=600, name="extraction.txt", **options):
        path = tmp_path / name
        return path, directory_extract.write(path, rows, **options)

    return _extract


@pytest.fixture
def awkward(tmp_path):
    """Names with accents, apostrophes, hyphens, non-breaking spaces; two exercises of one box."""
    rows = [
        row(
            address="helene.lefevre@medecin.mssante.fr",
            last="LEFÈVRE",
            first="Hélène",
            specialty=("SM54", "Cardiologie et maladies vasculaires"),
            demat="O",
            structure="CENTRE HOSPITALIER DES ALPES",
        ),
        row(
            address="helene.lefevre@medecin.mssante.fr",
            last="LEFÈVRE",
            first="Hélène",
            specialty=("SM54", "Cardiologie et maladies vasculaires"),
            demat="O",
            structure="CLINIQUE DU PARC",
            town=("73000", "CHAMBÉRY"),
        ),
        row(
            address="jean-pierre.dartagnan@medecin.mssante.fr",
            last="D'ARTAGNAN",
            first="Jean-Pierre",
            demat="N",
            structure="L'HOPITAL `DU LAC`",
            service="Service d'Accueil",
        ),
        row(
            address="marc.le-goff@infirmier.mssante.fr",
            last="LE\u00a0GOFF",
            first="Jean\u00a0Marc",
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
        row(
            kind="ORG",
            address="cardiologie@ch-alpes.mssante.fr",
            service="Service de cardiologie",
            structure="CENTRE HOSPITALIER DES ALPES",
            profession=("", ""),
        ),
        row(
            kind="APP",
            address="envois-noreply@ch-alpes.mssante.fr",
            structure="CENTRE HOSPITALIER DES ALPES",
            profession=("", ""),
        ),
    ]
    return write_rows(tmp_path / "awkward.txt", rows, ending="\r\n")
