"""A synthetic "Extraction_Correspondance_MSSante" in the exact published format (issue 12).

Deterministic (same arguments, same bytes), with the real file's awkward cases: addresses on
several rows (one per exercise, about 1 in 12), empty cells, names with accents, apostrophes,
hyphens and non-breaking spaces, PER/ORG/APP/CAB boxes, LF or CRLF line ends, plain or zipped.

    python bench/directory_extract.py OUT.txt --rows 535000 [--crlf] [--zip] [--changes 0.01]

`--changes F` writes the same directory with F of its addresses changed: a third removed, a third
modified (town, dematerialisation or a new exercise), a third added; `write()` returns the three
sets of addresses so a test can compare them with what the import reports.
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

NBSP = "\u00a0"
HEADER = (
    "Type de BAL|Adresse BAL|Type Identifiant PP|Identifiant PP|Identification nationale PP|"
    "Type identifiant structure|Identification Structure|Service de rattachement|Civilité d'exercice|"
    "Nom d'exercice|Prénom d'exercice|Catégorie profession|Libellé de catégorie profession|Code Profession|"
    "Libellé Profession|Code savoir-faire|Libellé savoir-faire|Dématérialisation|Raison Sociale structure BAL|"
    "Enseigne commerciale structure BAL|L2COMPLEMENTLOCALISATION|L3COMPLEMENTDISTRIBUTION|L4NUMEROVOIE|"
    "L4COMPLEMENTNUMEROVOIE|NL4TYPEVOIE|L4LIBELLEVOIE|L5LIEUDITMENTION|L6LIGNEACHEMINEMENT|Code postal|"
    "Département|Pays"
)
LAST = (
    "MARTIN BERNARD THOMAS PETIT ROBERT RICHARD DURAND DUBOIS MOREAU LAURENT SIMON MICHEL LEFÈVRE LEROY ROUX "
    "DAVID BERTRAND MOREL FOURNIER GIRARD BONNET DUPONT LAMBERT FONTAINE ROUSSEAU VINCENT MÜLLER FAURE ANDRÉ "
    "MERCIER BLANC GUÉRIN BOYER GARNIER CHEVALIER FRANÇOIS LEGRAND GAUTHIER GARCIA PERRIN ROBIN CLÉMENT MORIN "
    "NICOLAS HENRY ROUSSEL MATHIEU GAUTIER MASSON MARCHAND DUVAL DENIS DUMONT MARIE LEMAIRE NOËL MEYER DUFOUR "
    "MEUNIER BRUN BLANCHARD GIRAUD JOLY RIVIÈRE LUCAS BRUNET GAILLARD BARBIER ARNAUD MARTINEZ GÉRARD ROCHE "
    "RENARD SCHMITT ROY LEROUX COLIN VIDAL CARON PICARD ROGER FABRE AUBERT LEMOINE RENAUD DUMAS LACROIX OLIVIER "
    "PHILIPPE BOURGEOIS PIERRE BENOÎT REY LECLERC PAYET ROLLAND LECLERCQ GUILLAUME LECOMTE LÓPEZ JEAN DUPUY "
    "D'ARTAGNAN N'DIAYE LE\u00a0GOFF DUPONT-MOREAU SAINT-ÉTIENNE L'HÔTE DE\u00a0LA\u00a0TOUR ŒUVRARD BÉRAUD-LÉVÊQUE"
).split(" ")
FIRST = (
    "Jean Marie Pierre Anne Louis Claire Paul Sophie Michel Julie Hélène Zoé Anaïs Gaëlle Jérôme François "
    "Jean-Pierre Marie-Ange Léa Chloé Noël Inès Maël Éloïse Benoît Cécile Agnès Joël Jean\u00a0Marc Renée"
).split(" ")
PROFESSIONS = [
    (
        "10",
        "Médecin",
        [
            ("SM54", "Cardiologie et maladies vasculaires"),
            ("SM26", "Qualifié en Médecine Générale"),
            ("SM53", "Spécialiste en Médecine Générale"),
            ("SM38", "Pédiatrie"),
            ("SM19", "Gynécologie-obstétrique"),
            ("SM42", "Psychiatrie"),
            ("SM09", "Dermatologie et vénéréologie"),
            ("", ""),
        ],
    ),
    ("60", "Infirmier", [("", "")]),
    ("21", "Pharmacien", [("", "")]),
    ("50", "Sage-Femme", [("", "")]),
    ("70", "Masseur-Kinésithérapeute", [("", "")]),
    ("40", "Chirurgien-Dentiste", [("SCD01", "Orthopédie dento-faciale"), ("", "")]),
    ("80", "Pédicure-Podologue", [("", "")]),
    ("91", "Orthophoniste", [("", "")]),
]
PROFESSION_WEIGHTS = [40, 25, 10, 5, 10, 5, 2, 3]
DOMAINS = {
    "10": "medecin",
    "60": "infirmier",
    "21": "pharmacien",
    "50": "sage-femme",
    "70": "masseur-kinesitherapeute",
    "40": "chirurgien-dentiste",
    "80": "pedicure-podologue",
    "91": "pro",
}
TOWNS = [
    ("75013", "PARIS"),
    ("69003", "LYON"),
    ("13005", "MARSEILLE"),
    ("38000", "GRENOBLE"),
    ("31000", "TOULOUSE"),
    ("33000", "BORDEAUX"),
    ("59000", "LILLE"),
    ("67000", "STRASBOURG"),
    ("44000", "NANTES"),
    ("06000", "NICE"),
    ("20000", "AJACCIO"),
    ("20200", "BASTIA"),
    ("97400", "SAINT-DENIS"),
    ("97110", "POINTE-À-PITRE"),
    ("42000", "SAINT-ÉTIENNE"),
    ("29200", "BREST"),
    ("63000", "CLERMONT-FERRAND"),
    ("87000", "LIMOGES"),
    ("38100", "GRENOBLE"),
    ("73000", "CHAMBÉRY"),
    ("05000", "GAP"),
    ("26000", "VALENCE"),
    ("74000", "ANNECY"),
]
STREETS = [
    ("R", "DE LA RÉPUBLIQUE"),
    ("AV", "JEAN JAURÈS"),
    ("BD", "VICTOR HUGO"),
    ("PL", "DU MARCHÉ"),
    ("R", "DES ÉCOLES"),
    ("CHE", "DES PRÉS"),
    ("R", "D'ALSACE-LORRAINE"),
    ("ALL", "DES TILLEULS"),
]
STRUCTURES = [
    "CENTRE HOSPITALIER",
    "CLINIQUE",
    "CENTRE DE SANTÉ",
    "LABORATOIRE",
    "EHPAD",
    "MAISON DE SANTÉ",
    "PHARMACIE",
    "CABINET MÉDICAL",
]
SERVICES = [
    "Cardiologie",
    "Pédiatrie",
    "Urgences",
    "Secrétariat médical",
    "Radiologie",
    "Biologie médicale",
    "Chirurgie orthopédique",
    "Maternité",
    "Admissions",
    "",
]
CIVILITIES = [("DR", 4), ("M", 2), ("MME", 3), ("PR", 1)]


@dataclass
class Expected:
    added: set = field(default_factory=set)
    changed: set = field(default_factory=set)
    removed: set = field(default_factory=set)
    addresses: int = 0
    rows: int = 0


def _ascii(text: str) -> str:
    import unicodedata

    text = text.replace("Œ", "OE").replace("œ", "oe")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def shape(i: int) -> tuple[float, int]:
    """Kind roll and number of exercises of address number `i`, cheap to compute."""
    roll = ((i * 2654435761 + 12345) % 2**32) / 2**32
    if not (roll < 0.78 or roll >= 0.97):
        return roll, 1
    return roll, 1 + (i % 13 == 5) + (i % 50 == 7)


def addresses_for(rows: int) -> int:
    """How many addresses make at least `rows` rows."""
    total = i = 0
    while total < rows:
        total += shape(i)[1]
        i += 1
    return i


def record(i: int, variant: int = 0) -> list[list[str]]:
    """The rows (31 cells each) of address number `i`; `variant` > 0 is a modified version."""
    rng = random.Random(i * 7919 + 17)
    roll, exercises = shape(i)
    postcode, town = rng.choice(TOWNS)
    number = str(rng.randint(1, 120))
    street_type, street = rng.choice(STREETS)
    demat = rng.choice(["O", "N", "", ""])
    department = (
        "2A"
        if postcode == "20000"
        else "2B"
        if postcode == "20200"
        else postcode[:3]
        if postcode.startswith("97")
        else postcode[:2]
    )
    if variant:
        postcode, town = TOWNS[(TOWNS.index((postcode, town)) + variant) % len(TOWNS)]
        department = postcode[:2]
        demat = "O" if demat != "O" else "N"
    address_cells = [
        "",
        "",
        number,
        rng.choice(["", "", "B"]),
        street_type,
        street,
        "",
        f"{postcode} {town}",
        postcode,
        department,
        rng.choice(["FRANCE", "FRANCE", ""]),
    ]
    finess = f"{rng.randint(10**8, 10**9 - 1)}"
    structure = f"{rng.choice(STRUCTURES)} {rng.choice(LAST)}"
    if roll < 0.78 or roll >= 0.97:  # nominative (PER), or a practice box (CAB)
        kind = "PER" if roll < 0.78 else "CAB"
        code, label, skills = PROFESSIONS[rng.choices(range(len(PROFESSIONS)), PROFESSION_WEIGHTS)[0]]
        last, first = rng.choice(LAST), rng.choice(FIRST)
        civility = (
            rng.choices([c for c, _ in CIVILITIES], [w for _, w in CIVILITIES])[0]
            if code == "10"
            else rng.choice(["M", "MME", ""])
        )
        address = f"{_ascii(first)}.{_ascii(last)}{i}@{DOMAINS[code]}.mssante.fr"
        rpps = f"8{i:010d}"
        rows = []
        for n in range(exercises):
            skill_code, skill = rng.choice(skills)
            rows.append(
                [
                    kind,
                    address,
                    "8",
                    rpps,
                    f"8{rpps}",
                    "FINESS" if n == 0 else "SIRET",
                    finess if n == 0 else f"{rng.randint(10**13, 10**14 - 1)}",
                    rng.choice(SERVICES) if n else "",
                    civility,
                    last,
                    first,
                    "C",
                    "Civil",
                    code,
                    label,
                    skill_code,
                    skill,
                    demat,
                    structure if n == 0 or not variant else f"{structure} (site {n})",
                    rng.choice(["", "", "ENSEIGNE DU MARCHÉ"]),
                    *address_cells,
                ]
            )
        if variant and exercises == 1 and variant % 2:
            rows.append([*rows[0][:7], "Consultations avancées", *rows[0][8:]])
        return rows
    kind = "ORG" if roll < 0.94 else "APP"
    service = rng.choice(SERVICES[:-1])
    local = _ascii(service) if kind == "ORG" else "envois-automatiques"
    address = f"{local}.{i}@{_ascii(structure)[:20].strip('-')}.mssante.fr"
    return [
        [
            kind,
            address,
            "",
            "",
            "",
            "FINESS",
            finess,
            service,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            demat,
            structure,
            "",
            *address_cells,
        ]
    ]


def write(
    path, rows: int, *, seed: int = 0, crlf: bool = False, zipped: bool = False, changes: float = 0.0
) -> Expected:
    """Write the directory of at least `rows` rows to `path` (`changes`: its modified version)."""
    expected = Expected()
    ending = "\r\n" if crlf else "\n"
    base = seed * 10_000_000
    changed_every = int(1 / (changes / 3)) if changes else 0
    text = io.StringIO() if zipped else None
    with open(path, "w", encoding="utf-8", newline="") if not zipped else _nullcontext(text) as out:
        out.write(HEADER + ending)
        added = 0
        for i in range(addresses_for(rows)):
            variant = 0
            if changed_every and i % changed_every == changed_every // 3:
                expected.removed.add(record(base + i)[0][1])
                continue
            if changed_every and i % changed_every == 2 * changed_every // 3:
                variant = 1 + i % 3
            lines = record(base + i, variant)
            if variant:
                expected.changed.add(lines[0][1])
            for cells in lines:
                out.write("|".join(cells) + ending)
            expected.rows += len(lines)
            expected.addresses += 1
            if changed_every and (i + 1) % changed_every == 0:
                extra = record(base + 5_000_000 + added)
                added += 1
                expected.added.add(extra[0][1])
                for cells in extra:
                    out.write("|".join(cells) + ending)
                expected.rows += len(extra)
                expected.addresses += 1
    if zipped:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{Path(path).stem}.txt", text.getvalue().encode("utf-8"))
    return expected


class _nullcontext:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=535_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crlf", action="store_true")
    parser.add_argument("--zip", action="store_true")
    parser.add_argument("--changes", type=float, default=0.0)
    args = parser.parse_args()
    expected = write(args.out, args.rows, seed=args.seed, crlf=args.crlf, zipped=args.zip, changes=args.changes)
    print(
        f"{expected.rows} rows, {expected.addresses} addresses; "
        f"changes: {len(expected.added)} added, {len(expected.changed)} changed, {len(expected.removed)} removed"
    )


if __name__ == "__main__":
    main()
