"""The ANS extraction "Extraction_Correspondance_MSSante": reading it line by line.

UTF-8, `|` between cells, one header row naming the 31 columns below (found by name, in any
order; extra columns are ignored), LF or CRLF line ends, plain or inside a ZIP archive as
published. One row per box and exercise: an address may come on several rows, kept together
under that address. No date in the file: the address is the key.

Two kinds of faults:
- the file is malformed (header without a required column, a row whose cell count differs from
  the header's, bytes that are not UTF-8, a last line cut short, a damaged archive): `ExtractRefused`
  with the line number, and nothing of the file is applied;
- a row is well formed but unusable (no address, an address that is not one, an unknown box
  kind): the row is rejected, reported with its line number and reason, and the rest goes on.

The reader yields one `StagedRow` per usable row, in bounded memory (a line at a time).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from directory.normalise import flatten, fold

COLUMNS = (
    "Type de BAL",
    "Adresse BAL",
    "Type Identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Type identifiant structure",
    "Identification Structure",
    "Service de rattachement",
    "Civilité d'exercice",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Catégorie profession",
    "Libellé de catégorie profession",
    "Code Profession",
    "Libellé Profession",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Dématérialisation",
    "Raison Sociale structure BAL",
    "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION",
    "L3COMPLEMENTDISTRIBUTION",
    "L4NUMEROVOIE",
    "L4COMPLEMENTNUMEROVOIE",
    "NL4TYPEVOIE",
    "L4LIBELLEVOIE",
    "L5LIEUDITMENTION",
    "L6LIGNEACHEMINEMENT",
    "Code postal",
    "Département",
    "Pays",
)
(
    KIND,
    ADDRESS,
    PP_ID_TYPE,
    PP_ID,
    PP_NATIONAL_ID,
    STRUCTURE_ID_TYPE,
    STRUCTURE_ID,
    SERVICE,
    CIVILITY,
    LAST_NAME,
    FIRST_NAME,
    CATEGORY,
    CATEGORY_LABEL,
    PROFESSION_CODE,
    PROFESSION_LABEL,
    SPECIALTY_CODE,
    SPECIALTY_LABEL,
    DEMATERIALISATION,
    STRUCTURE_NAME,
    STRUCTURE_SIGN,
    L2,
    L3,
    L4_NUMBER,
    L4_NUMBER_EXTRA,
    L4_STREET_TYPE,
    L4_STREET,
    L5,
    L6,
    POSTCODE,
    DEPARTMENT,
    COUNTRY,
) = range(len(COLUMNS))

BOX_KINDS = ("PER", "ORG", "APP", "CAB")
_YES = {"o", "oui", "y", "yes", "true", "vrai", "1"}
_NO = {"n", "non", "no", "false", "faux", "0"}
# Dematerialisation cells accepted without lowering them first (the rest: `row_error`).
_PLAIN_DEMAT = frozenset({"", *_YES, *_NO, *(v.upper() for v in _YES | _NO), *(v.title() for v in _YES | _NO)})
# The same patterns in SQL: directory/staging.py.
_ADDRESS = re.compile(r"[^@ \t\n\r\f\v|]+@[a-z0-9-]+(\.[a-z0-9-]+)+")
_POSTCODE = re.compile(r"\b([0-9]{5})\b", re.ASCII)
BLANKS = " \t\u00a0"  # what is trimmed around a cell (the same in directory/staging.py)
MAX_REPORTED = 1000  # rejected lines kept for the report; the count goes on


class ExtractRefused(ValueError):
    """The whole file is refused; `line` is the 1-based line number when one is at fault."""

    def __init__(self, reason: str, line: int | None = None):
        self.line = line
        self.reason = reason
        super().__init__(f"ligne {line} : {reason}" if line else reason)


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


class StagedRow(NamedTuple):
    """One usable row: the cells the directory shows and searches, already folded."""

    line: int
    address: str
    kind: str
    civility: str
    last_name: str
    first_name: str
    profession_code: str
    profession_label: str
    specialty_label: str
    structure_name: str
    service: str
    street: str
    postcode: str
    town: str
    department: str
    country: str
    dematerialisation: bool | None
    exercise: str  # the 31 cells in the canonical order, joined by "|": what the diff compares
    name_key: str
    search_piece: str


ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a member's header; an empty archive's end record


@contextmanager
def open_extract(path) -> Iterator[io.BufferedIOBase]:
    """A binary stream of the extraction, from a plain file or the one text file of a ZIP. A file
    that cannot be read, or a ZIP whose data turns out damaged while reading, is refused."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, the errors of reading it caught
    except OSError as exc:
        raise ExtractRefused(f"fichier illisible ({exc.strerror or type(exc).__name__})") from None
    with handle:
        try:
            zipped = handle.read(4) in ZIP_SIGNATURES
            handle.seek(0)
            if not zipped:
                yield handle
                return
            try:
                archive = zipfile.ZipFile(handle)
                members = [i for i in archive.infolist() if not i.is_dir()]
            except zipfile.BadZipFile:
                raise ExtractRefused("archive ZIP illisible ou tronquée") from None
            if len(members) != 1:
                raise ExtractRefused(f"l'archive ZIP doit contenir un seul fichier (elle en contient {len(members)})")
            with archive.open(members[0]) as member:
                yield io.BufferedReader(member, buffer_size=1 << 20)
        except (zipfile.BadZipFile, zlib.error, EOFError):
            raise ExtractRefused("archive ZIP endommagée : son contenu ne se lit pas jusqu'au bout") from None
        except OSError as exc:
            raise ExtractRefused(
                f"fichier illisible en cours de lecture ({exc.strerror or type(exc).__name__})"
            ) from None


def header_positions(line: str) -> list[int]:
    """Position in the file of each canonical column, or `ExtractRefused` naming the missing one."""
    names = [fold(cell) for cell in line.lstrip("\ufeff").rstrip("\r\n").split("|")]
    positions = []
    for column in COLUMNS:
        key = fold(column)
        if names.count(key) > 1:
            raise ExtractRefused(f"la colonne « {column} » figure deux fois dans l'en-tête", 1)
        if key not in names:
            raise ExtractRefused(f"l'en-tête n'a pas la colonne « {column} »", 1)
        positions.append(names.index(key))
    return positions


def read_header(stream) -> tuple[list[int], int]:
    """(position of each canonical column, number of cells per row) from the first line."""
    header = stream.readline()
    if not header.strip():
        raise ExtractRefused("le fichier est vide", 1)
    return header_positions(_decode(header, 1)), header.count(b"|") + 1


class Progress:
    """The number of the last line the reader consumed (the header is line 1), for the report."""

    lines = 0


BLOCK = 1 << 20  # bytes read at a time: each block is decoded and split in one call


def _blocks(stream) -> Iterator[bytes]:
    """The rest of `stream` in blocks of whole lines; only the very last may lack its line end."""
    while block := stream.read(BLOCK):
        if not block.endswith(b"\n"):
            block += stream.readline()
        yield block


def _texts(block: bytes, first: int, bars: int) -> tuple[Iterable[str], bool]:
    """(the lines of `block`, from line `first`, as text without their ends (LF or CRLF);
    whether the block's last line has no line end: a truncated file). A block that is not
    UTF-8 throughout is decoded a line at a time, to refuse at the faulty line (after a wrong
    cell count, as a line at a time did)."""
    truncated = not block.endswith(b"\n")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raws = block.split(b"\n")
        raws.pop()
        return _texts_one_by_one(raws, first, bars), truncated
    texts = text.split("\n")
    texts.pop()  # what follows the last line end: nothing, or a line cut short
    if "\r" in text:
        texts = [t[:-1] if t.endswith("\r") else t for t in texts]
    return texts, truncated


def _texts_one_by_one(raws: list[bytes], first: int, bars: int) -> Iterator[str]:
    for line_no, raw in enumerate(raws, first):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        yield raw.decode("utf-8", "replace") if raw.count(b"|") != bars else _decode(raw, line_no)


class LightRow(NamedTuple):
    """What is staged of every usable row: enough to group and compare. The entry's columns are
    built only for the addresses that are new or changed (`build_row`, or SQL on PostgreSQL)."""

    line: int
    repeat: bool  # a later row of an address already met (another exercise)
    address: str
    exercise: str  # the 31 trimmed cells in the canonical order, joined by "|"


_BLANK = " \t\n\r\x0b\x0c"  # what makes a line blank (ASCII white space)


def light_rows(stream, positions, width, on_reject, progress: Progress | None = None) -> Iterator[tuple]:
    """The usable rows after the header (as `LightRow` tuples); rejected ones reported;
    `ExtractRefused` raised; `progress.lines` kept. Bounded memory: a block of lines at a time
    (about a megabyte), plus the set of addresses met. Most lines are checked by a few calls
    on the line (its cell count, the cells the checks need); the rest take the full path."""
    seen = set()  # the addresses met so far: about 70 MB for the national file
    canonical = positions == list(range(len(COLUMNS))) and width == len(COLUMNS)
    bars = width - 1
    line_no = 1
    try:
        for block in _blocks(stream):
            texts, truncated = _texts(block, line_no + 1, bars)
            for text in texts:
                line_no += 1
                if text.count("|") != bars:
                    if not text.strip(_BLANK):
                        on_reject(Rejected(line_no, "ligne vide"))
                        continue
                    raise ExtractRefused(f"{text.count('|') + 1} colonnes au lieu de {width}", line_no)
                if canonical and not (
                    "| " in text
                    or " |" in text
                    or "\t" in text
                    or "\u00a0" in text
                    or text[:1] == " "
                    or text[-1:] == " "
                ):
                    # The file's order is the canonical one and no cell needs trimming (most
                    # lines): the line is the exercise; only the cells checked below are cut out.
                    values, exercise = text.split("|", DEMATERIALISATION + 1), text
                else:
                    cells = text.split("|")
                    values = [cells[p].strip(BLANKS) for p in positions]
                    exercise = "|".join(values)
                address = values[ADDRESS].lower()
                # The common case in one test; anything else gets the full check and its reason.
                if not (
                    values[KIND] in BOX_KINDS
                    and values[DEMATERIALISATION] in _PLAIN_DEMAT
                    and _ADDRESS.fullmatch(address)
                ):
                    reason = row_error(values)
                    if reason:
                        on_reject(Rejected(line_no, reason))
                        continue
                repeat = address in seen
                if not repeat:
                    seen.add(address)
                yield (line_no, repeat, address, exercise)
            if truncated:
                line_no += 1
                raise ExtractRefused("dernière ligne incomplète : le fichier semble tronqué", line_no)
    finally:
        if progress is not None:
            progress.lines = line_no


def read_rows(stream, on_reject: Callable[[Rejected], None]) -> Iterator[StagedRow]:
    """Every usable row of `stream`, fully built in Python (the reference of the SQL in
    directory/staging.py)."""
    positions, width = read_header(stream)
    for line, _repeat, _address, exercise in light_rows(stream, positions, width, on_reject):
        yield build_row(line, exercise.split("|"))


def _decode(raw: bytes, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ExtractRefused("octets qui ne sont pas de l'UTF-8", line_no) from None


def row_error(v: list[str]) -> str:
    """Why a well-formed row cannot be used ("" when it can)."""
    address = v[ADDRESS].lower()
    if not address:
        return "adresse BAL vide"
    if not _ADDRESS.fullmatch(address):
        return f"adresse BAL invalide « {v[ADDRESS][:80]} »"
    if v[KIND].upper() not in BOX_KINDS:
        return f"type de BAL inconnu « {v[KIND][:20]} » (attendu : {', '.join(BOX_KINDS)})"
    demat = v[DEMATERIALISATION].lower()
    if demat and demat not in _YES and demat not in _NO:
        return f"valeur de dématérialisation inconnue « {v[DEMATERIALISATION][:20]} »"
    return ""


def build_row(line_no: int, v: list[str]) -> StagedRow:
    """The entry's columns from a usable row's cells (`v`, canonical order)."""
    address = v[ADDRESS].lower()
    demat = v[DEMATERIALISATION].lower()
    structure = v[STRUCTURE_NAME] or v[STRUCTURE_SIGN]
    # What the SQL twin computes (directory/staging.py): keep the two in step.
    street_line = " ".join(c for c in (v[L4_NUMBER], v[L4_NUMBER_EXTRA], v[L4_STREET_TYPE], v[L4_STREET]) if c)
    street = ", ".join(c for c in (v[L2], v[L3], street_line, v[L5]) if c)
    postcode = v[POSTCODE]
    town = v[L6]
    if postcode and town.startswith(postcode):
        town = town[len(postcode) :].strip(BLANKS)
    department = v[DEPARTMENT] or department_of(postcode or _first_postcode(v[L6]))
    if v[LAST_NAME]:
        name = f"{v[LAST_NAME]} {v[FIRST_NAME]}"
    else:
        name = v[SERVICE] or structure or address.split("@", 1)[0]
    return StagedRow(
        line=line_no,
        address=address,
        kind=v[KIND].upper(),
        civility=v[CIVILITY],
        last_name=v[LAST_NAME],
        first_name=v[FIRST_NAME],
        profession_code=v[PROFESSION_CODE],
        profession_label=v[PROFESSION_LABEL],
        specialty_label=v[SPECIALTY_LABEL],
        structure_name=structure,
        service=v[SERVICE],
        street=street,
        postcode=postcode,
        town=town,
        department=department,
        country=v[COUNTRY],
        dematerialisation=(demat in _YES) if demat else None,
        exercise="|".join(v),
        name_key=fold(name),
        search_piece=search_piece(v, name, street),
    )


def search_piece(v: list[str], name: str, street: str) -> str:
    """The searched text of one row, only flattened (no accents, lower case, no apostrophes):
    search matches folded words inside it, and punctuation between words is harmless. A cell
    equal to the name (or the sign to the structure) is there already: not repeated."""
    structure = v[STRUCTURE_NAME] if v[STRUCTURE_NAME] != name else ""
    sign = v[STRUCTURE_SIGN] if v[STRUCTURE_SIGN] != structure else ""
    service = v[SERVICE] if v[SERVICE] != name else ""
    searched = (name, v[PROFESSION_LABEL], v[SPECIALTY_LABEL], structure, sign, service)
    return flatten(" ".join(c for c in (*searched, street, v[L6]) if c))


def _first_postcode(text: str) -> str:
    found = _POSTCODE.search(text or "")
    return found.group(1) if found else ""


def department_of(postcode: str) -> str:
    """The department of a French postcode: "38" for 38100, "2A"/"2B" in Corsica, "971" overseas."""
    if not re.fullmatch("[0-9]{5}", postcode):
        return ""
    if postcode.startswith("20"):
        return "2A" if postcode < "20200" else "2B"
    if postcode[:2] in ("97", "98"):
        return postcode[:3]
    return postcode[:2]
