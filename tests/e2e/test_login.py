"""A professional and a patient sign in through the browser and land on their own mailboxes."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_professional_lands_on_their_mailboxes(cast, login, live_server):
    page = login("alice")
    assert page.url == f"{live_server.url}/pro/"
    text = page.locator("main").inner_text()
    assert "alice.martin@ch-troispics.mssante.fr" in text
    assert "cardiologie@ch-troispics.mssante.fr" in text
    assert "charlie.durand" not in text


def test_patient_lands_on_their_inbox(cast, login, live_server):
    page = login(cast.paul.username)
    assert page.url == f"{live_server.url}/patient/"
    text = page.locator("main").inner_text()
    assert cast.paul_patient.ins in text
    assert cast.pauline_patient.ins not in text


def test_wrong_password_is_refused_with_a_message(cast, page, live_server):
    page.goto(f"{live_server.url}/comptes/login/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "pas-le-bon")
    page.click("button[type=submit]")
    error = page.locator(".errorlist, [role=alert], .alert")
    error.first.wait_for()  # the answer page has loaded (the click returns before it)
    assert "/comptes/login/" in page.url
    assert error.count() >= 1
