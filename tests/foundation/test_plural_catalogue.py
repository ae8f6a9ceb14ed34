"""Every plural of the product speaks French: « 0 message traité », not « 0 messages traités ».

French puts 0 and 1 in the singular (`plural=(n > 1)`). A plural msgid (`ngettext`,
`npgettext`, `{% blocktranslate count %}`) missing from locale/fr/LC_MESSAGES/django.po falls
back to gettext's English rule (n != 1) and shows the plural for 0. Django's own extraction
(`manage.py makemessages`, xgettext underneath) runs on a temporary copy of the product's
sources; every plural it finds must be translated in the committed catalogue, and the compiled
catalogue (.mo) must give the singular for 0 and 1.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import translation

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "locale" / "fr" / "LC_MESSAGES" / "django.po"
SOURCES = [
    "accounts",
    "audit",
    "mailboxes",
    "patients",
    "health_record",
    "directory",
    "webmail",
    "automation",
    "api",
    "clients",
    "operations",
    "mssante",
    "templates",
    "locale",
]


def po_entries(text: str) -> list[dict]:
    """The entries of a .po file: each a dict of its keywords (msgid, msgid_plural, msgstr[0]…)
    and `fuzzy`. Obsolete entries (`#~`) are left out."""
    entries = []
    for block in text.split("\n\n"):
        entry, key = {"fuzzy": False}, None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["fuzzy"] = entry["fuzzy"] or "fuzzy" in line
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"'):
                entry[key] += ast.literal_eval(line)
            else:
                key, _sep, value = line.partition(" ")
                entry[key] = ast.literal_eval(value)
        if "msgid" in entry:
            entries.append(entry)
    return entries


def plurals(entries: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(e.get("msgctxt", ""), e["msgid"], e["msgid_plural"]): e for e in entries if "msgid_plural" in e}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict:
    """The plurals `makemessages` finds in the product's code and templates."""
    copy = tmp_path_factory.mktemp("sources")
    for name in SOURCES:
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", copy / "manage.py")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mssante.settings_test"}
    command = [sys.executable, "manage.py", "makemessages", "-l", "fr", "--no-obsolete", "--no-location"]
    subprocess.run(command, cwd=copy, env=env, check=True, capture_output=True, timeout=300)
    po = (copy / "locale" / "fr" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    return plurals(po_entries(po))


def test_every_plural_of_the_code_and_templates_is_in_the_french_catalogue(extracted):
    ours = plurals(po_entries(CATALOGUE.read_text(encoding="utf-8")))
    # The extraction read the sources: the campaign's progress and the webmail's moves are there.
    assert ("", "%(done)s message traité sur %(total)s", "%(done)s messages traités sur %(total)s") in extracted
    assert ("", "%(n)d message restauré.", "%(n)d messages restaurés.") in extracted
    missing = [
        key[1]
        for key in extracted
        if key not in ours or ours[key]["fuzzy"] or not (ours[key].get("msgstr[0]") and ours[key].get("msgstr[1]"))
    ]
    assert missing == []


def test_the_catalogue_gives_the_singular_for_zero_and_one():
    text = CATALOGUE.read_text(encoding="utf-8")
    assert "Plural-Forms: nplurals=2; plural=(n > 1);" in po_entries(text)[0]["msgstr"]
    entries = plurals(po_entries(text))
    assert len(entries) >= 30
    with translation.override("fr"):
        for (_context, one, many), entry in entries.items():
            read = [translation.ngettext(one, many, n) for n in (0, 1, 2)]
            assert read == [entry["msgstr[0]"], entry["msgstr[0]"], entry["msgstr[1]"]], one
