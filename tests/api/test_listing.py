"""Reading a box page by page (issue 10, `GET /api/v1/boxes/{box}/messages`): the cursor follows
the box's reading order (api/listing.py), so a message that commits after a later one is still
read, where a cursor over ids passed it for good."""

import threading

from django.db import connection, transaction
from django.utils import timezone

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Entry, Folder

LIST = "/api/v1/boxes/{box}/messages"


def read_all(api, box, cursor=None) -> tuple[list[int], str | None]:
    """Every page from `cursor` (limit 1): the entry ids read, and the last cursor given."""
    ids = []
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.call.get(LIST.format(box=box.address), params)
        assert page.status_code == 200, page.content
        ids += [item["id"] for item in page.json()["results"]]
        if page.json()["next_cursor"] is None:
            return ids, cursor
        cursor = page.json()["next_cursor"]


def send_to(cast, box, subject):
    return send_from_mailbox(cast.alice_box, cast.alice, to=[box.address], subject=subject, text="x").message


def test_pages_follow_the_reading_order_and_old_cursors_still_work(transactional_db, cast, api):
    box = cast.cardio  # the applicative box's return box: its key reads it
    for n in range(3):
        send_to(cast, box, f"Message {n}")
    entries = list(Entry.objects.filter(mailbox=box).order_by("id").values_list("id", flat=True))
    ids, last = read_all(api, box)
    assert ids == entries
    assert list(Entry.objects.filter(mailbox=box).order_by("id").values_list("api_position", flat=True)) == [1, 2, 3]
    # A cursor given before the reading order (an entry id) stands after that entry.
    import base64

    old = base64.urlsafe_b64encode(f"e{entries[0]}".encode()).decode().rstrip("=")
    assert read_all(api, box, old)[0] == entries[1:]
    refused = api.call.get(LIST.format(box=box.address), {"cursor": "garbage!"})
    assert refused.status_code == 422 and "cursor" in refused.json()["errors"]


def test_a_message_that_commits_after_a_later_one_is_still_read(transactional_db, cast, api):
    """A delivery takes its ids before it commits: here an entry of the box is inserted (id
    taken) by another connection that commits only after two later entries were committed and
    listed. Reading on from the cursor given meanwhile finds it."""
    box = cast.cardio
    send_to(cast, box, "Premier")
    elsewhere = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Retard", text="x"
    ).message
    inbox = box.folder(Folder.Role.INBOX)
    inserted, commit, late = threading.Event(), threading.Event(), []

    def late_delivery():
        try:
            with transaction.atomic():
                late.append(
                    Entry.objects.create(mailbox=box, message=elsewhere, folder=inbox, received_at=timezone.now()).pk
                )
                inserted.set()
                assert commit.wait(30)
        finally:
            inserted.set()
            connection.close()

    postgres = connection.vendor == "postgresql"  # SQLite has one writer at a time: no such race
    thread = threading.Thread(target=late_delivery) if postgres else None
    if thread:
        thread.start()
        assert inserted.wait(30) and late
    send_to(cast, box, "Deuxième")
    send_to(cast, box, "Troisième")
    first_pages = api.call.get(LIST.format(box=box.address), {"limit": 2}).json()
    assert first_pages["next_cursor"] is not None
    if thread:
        commit.set()
        thread.join(30)
    else:
        late.append(Entry.objects.create(mailbox=box, message=elsewhere, folder=inbox, received_at=timezone.now()).pk)
    rest, _ = read_all(api, box, first_pages["next_cursor"])
    read = [item["id"] for item in first_pages["results"]] + rest
    assert sorted(read) == sorted(Entry.objects.filter(mailbox=box).values_list("id", flat=True))
    assert late[0] in rest
    if postgres:
        assert late[0] < max(item["id"] for item in first_pages["results"])  # a lower id, read after


def test_polling_with_the_resume_cursor_gives_each_new_message_once(transactional_db, cast, api):
    box = cast.cardio
    send_to(cast, box, "Avant")
    page = api.call.get(LIST.format(box=box.address)).json()
    assert len(page["results"]) == 1 and page["next_cursor"] is None and page["resume_cursor"]
    resume = page["resume_cursor"]
    nothing = api.call.get(LIST.format(box=box.address), {"cursor": resume}).json()
    assert nothing["results"] == [] and nothing["resume_cursor"] == resume
    new = send_to(cast, box, "Après")
    page = api.call.get(LIST.format(box=box.address), {"cursor": resume}).json()
    assert [item["message_id"] for item in page["results"]] == [new.message_id]
    again = api.call.get(LIST.format(box=box.address), {"cursor": page["resume_cursor"]}).json()
    assert again["results"] == []
