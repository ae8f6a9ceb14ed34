"""axe-core on the directory: the search page with results, the completion list open in the
composer, and the dematerialisation settings: no serious or critical violation."""

import re

import pytest

from directory.importer import import_extract
from tests.directory.conftest import row, write_rows
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_directory_pages_pass_axe(cast, login, live_server, tmp_path):
    rows = [
        row(address="helene.lefevre@medecin.mssante.fr", last="LEFÈVRE", first="Hélène", demat="O"),
        row(address="paul.lefevreau@medecin.mssante.fr", last="LEFEVREAU", first="Paul", demat="N"),
        row(kind="ORG", address="cardiologie@ch-alpes.mssante.fr", service="Cardiologie", profession=("", "")),
    ]
    import_extract(write_rows(tmp_path / "directory.txt", rows))
    page = login("alice")
    found = {}
    page.goto(f"{live_server.url}/annuaire/")
    page.fill("input[name=q]", "lef")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?r="))
    found["recherche"] = serious_violations(page)
    page.goto(f"{live_server.url}/pro/ecrire/")
    page.locator("#id_to").press_sequentially("lefe", delay=20)
    page.locator("#to-suggestions [role=option]").first.wait_for()
    page.keyboard.press("ArrowDown")
    found["complétion"] = serious_violations(page)
    page.goto(f"{live_server.url}/annuaire/preferences/")
    found["préférences"] = serious_violations(page)
    assert found == {"recherche": [], "complétion": [], "préférences": []}
