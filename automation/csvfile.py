"""Reading a patients list as hospital software exports it (issue 9 item 4): UTF-8 (with or
without BOM) or Windows-1252, `;` or `,` between cells, a heading line, quoted cells that may
span lines. Line numbers are those of the file (the heading is line 1), so the validation report
names the line a secretary sees in her spreadsheet."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.utils.translation import gettext as _


class CsvError(ValueError):
    """The file cannot be read as a list; the message says why, in French."""


@dataclass
class ParsedCsv:
    encoding: str
    delimiter: str
    text: str
    headers: list[str]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # (line number, cells)


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name): UTF-8 when the bytes are valid UTF-8, else Windows-1252."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        raise CsvError(_("Le fichier n'est ni en UTF-8 ni en Windows-1252 : enregistrez-le en CSV UTF-8.")) from None


def delimiter_of(heading: str) -> str:
    """`;` (French spreadsheets) or `,`, whichever the heading line has more of outside quotes
    (`;` for a list of one column)."""
    counts = {";": 0, ",": 0}
    quoted = False
    for char in heading:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return ";" if counts[";"] >= counts[","] else ","


# The first bytes of the files a secretary takes for a list by mistake: the spreadsheet itself
# (xlsx and ods are zip archives, xls an OLE2 compound file) or a printed copy.
NOT_A_LIST = (
    (b"PK\x03\x04", "spreadsheet"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "spreadsheet"),
    (b"%PDF-", "pdf"),
    (b"\xff\xfe", "utf16"),
    (b"\xfe\xff", "utf16"),
)


def refuse_binary(data: bytes) -> None:
    """Raise `CsvError` for a file that is not text (a spreadsheet, a PDF, an image…), saying
    how to get the list out of the spreadsheet, instead of reading its bytes as lines."""
    kind = next((k for magic, k in NOT_A_LIST if data.startswith(magic)), "binary" if b"\x00" in data else "")
    if kind == "spreadsheet":
        raise CsvError(
            _(
                "Ce fichier est un classeur de tableur (Excel, LibreOffice), pas une liste CSV : ouvrez-le dans "
                "votre tableur et choisissez « Enregistrer sous » au format « CSV UTF-8 »."
            )
        )
    if kind == "utf16":
        raise CsvError(
            _(
                "Ce fichier est en « Texte Unicode » (UTF-16) : enregistrez-le au format « CSV UTF-8 » depuis votre tableur."
            )
        )
    if kind:
        raise CsvError(
            _(
                "Ce fichier n'est pas une liste CSV (c'est un PDF, une image ou un autre document) : exportez la "
                "liste des patients de votre logiciel au format CSV."
            )
        )


def read(data: bytes, *, max_lines: int) -> ParsedCsv:
    if not data.strip():
        raise CsvError(_("Le fichier est vide."))
    refuse_binary(data)
    text, encoding = decode(data)
    return read_text(text, encoding=encoding, max_lines=max_lines)


def read_text(text: str, *, encoding: str, max_lines: int) -> ParsedCsv:
    if not text.strip():
        raise CsvError(_("Le fichier est vide."))
    heading = text.lstrip("\r\n").splitlines()[0]
    delimiter = delimiter_of(heading)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    headers: list[str] | None = None
    parsed = ParsedCsv(encoding=encoding, delimiter=delimiter, text=text, headers=[])
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if headers is None:
                headers = [" ".join(c.split()) for c in cells]
                continue
            parsed.rows.append((reader.line_num, [c.strip() for c in cells]))
            if len(parsed.rows) > max_lines:
                raise CsvError(
                    _("Le fichier compte plus de %(n)d lignes : découpez-le en plusieurs listes.") % {"n": max_lines}
                )
    except csv.Error:
        # csv's own message is English ("field larger than field limit"): say it in French.
        raise CsvError(
            _("Ligne %(l)d : cette ligne ne peut pas être lue (cellule trop longue ou guillemet non fermé).")
            % {"l": reader.line_num}
        ) from None
    blank = [i + 1 for i, h in enumerate(headers or []) if not h]
    if blank:
        raise CsvError(_("La colonne %(c)s n'a pas de titre sur la première ligne.") % {"c": blank[0]})
    if len(set(headers)) != len(headers):
        raise CsvError(_("Deux colonnes portent le même titre : chaque colonne doit avoir un titre distinct."))
    if not parsed.rows:
        raise CsvError(_("Le fichier n'a aucune ligne de patient sous la ligne des titres."))
    parsed.headers = headers
    return parsed


def write_report(rows: list[list[str]], headers: list[str]) -> bytes:
    """A report for a French spreadsheet: UTF-8 with BOM, `;` between cells."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(headers)
    # A cell starting like a formula is shown as text by the spreadsheet, never evaluated.
    writer.writerows([[f"'{c}" if str(c)[:1] in ("=", "+", "-", "@") else c for c in row] for row in rows])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
