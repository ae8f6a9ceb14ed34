"""Issue 16 items 14–16 in Chromium: new mail appears by itself with the unread count in the tab
title; `e` goes on to the next message; several messages are selected with the mouse (shift
ranges) and the keyboard, then archived or trashed after a confirmation."""

import re

import pytest

from mailboxes import compose
from mailboxes.models import Entry, Folder

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def deliver(cast, subject):
    result = compose.send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject=subject, text="Bonjour."
    )
    return Entry.objects.get(mailbox=cast.alice_box, message=result.message)


def test_new_mail_appears_without_reloading(cast, login, live_server, settings):
    settings.WEBMAIL_POLL_SECONDS = 1
    first = deliver(cast, "Bilan de juin")
    page = login("alice")
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    page.goto(f"{live_server.url}/pro/bal/{cast.alice_box.pk}/dossier/{inbox.pk}/")
    assert page.title().startswith("(1) ")
    page.evaluate("() => { window.stillTheSamePage = true; }")
    page.check(f'input[name="entries"][value="{first.pk}"]')
    page.fill("[data-search]", "en cours de frappe")
    deliver(cast, "Résultats de biologie")
    page.locator(".message-list .subject", has_text="Résultats de biologie").wait_for(timeout=8000)
    assert page.evaluate("() => window.stillTheSamePage === true")  # no reload
    assert page.is_checked(f'input[name="entries"][value="{first.pk}"]')  # the selection stays
    assert page.input_value("[data-search]") == "en cours de frappe"  # so does what is typed
    page.wait_for_function("() => document.title.startsWith('(2) ')", timeout=5000)
    assert page.inner_text(f'[data-folder="{inbox.pk}"] .count').startswith("2")
    assert "1 nouveau message." in page.inner_text("[data-new-mail]")


def test_e_archives_and_opens_the_next_message(cast, login, live_server):
    older = deliver(cast, "Plus ancien")
    newer = deliver(cast, "Plus récent")
    page = login("alice")
    page.goto(f"{live_server.url}/pro/message/{newer.pk}/")
    page.keyboard.press("e")
    page.wait_for_url(re.compile(rf"/pro/message/{older.pk}/$"))
    assert "Message archivé." in page.inner_text(".flash")
    assert Entry.objects.get(pk=newer.pk).folder.role == Folder.Role.ARCHIVE
    assert page.input_value("#move-folder") == ""  # the move menu chooses nothing by itself


def test_select_with_shift_click_and_keyboard_then_act(cast, login, live_server):
    entries = [deliver(cast, f"Compte rendu {i}") for i in range(5)]  # newest last
    page = login("alice")
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    page.goto(f"{live_server.url}/pro/bal/{cast.alice_box.pk}/dossier/{inbox.pk}/")
    boxes = page.locator('[data-message-list] input[name="entries"]')
    assert boxes.count() == 5
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])  # the three newest
    assert [boxes.nth(i).is_checked() for i in range(5)] == [True, True, True, False, False]
    assert page.inner_text("[data-bulk-count]") == "3 messages sélectionnés"
    # Keyboard: Tab to a checkbox, `x` toggles it, Space too.
    boxes.nth(4).focus()
    page.keyboard.press("x")
    assert boxes.nth(4).is_checked()
    page.keyboard.press("Space")
    assert not boxes.nth(4).is_checked()
    page.click("#bulk-form button[value=archive]")
    page.wait_for_url(re.compile(r"/dossier/\d+/$"))
    assert "3 messages déplacés dans « Archives »." in page.inner_text(".flash")
    roles = [Entry.objects.get(pk=e.pk).folder.role for e in entries]
    assert roles == [
        Folder.Role.INBOX,
        Folder.Role.INBOX,
        Folder.Role.ARCHIVE,
        Folder.Role.ARCHIVE,
        Folder.Role.ARCHIVE,
    ]
    # Trash asks first (a page reached by keyboard too), then moves both.
    page.check("[data-pick-all]")
    page.click("#bulk-form button[value=trash]")
    page.locator("h1", has_text="Placer 2 message(s) dans la corbeille ?").wait_for()
    page.keyboard.press("Enter")  # the confirmation button has the focus
    page.wait_for_url(re.compile(r"/dossier/\d+/$"))
    assert "2 messages placés dans la corbeille." in page.inner_text(".flash")
    assert Entry.objects.filter(mailbox=cast.alice_box, folder__role=Folder.Role.TRASH).count() == 2
