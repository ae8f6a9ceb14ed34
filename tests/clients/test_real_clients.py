"""Real IMAP clients nobody here wrote, from Debian (installed by scripts/test): mbsync (isync)
syncing a box both ways, and offlineimap (issue 11 "Tests")."""

import os
import pathlib
import shutil
import subprocess

import pytest

from mailboxes.models import Entry, Folder
from tests.clients.conftest import build, deliver
from tests.factories import PASSWORD

pytestmark = pytest.mark.integration


def mbsync(config: pathlib.Path) -> subprocess.CompletedProcess:
    result = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def files(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for sub in ("cur", "new") for p in (folder / sub).glob("*") if p.is_file())


def write_mbsyncrc(tmp_path, port) -> pathlib.Path:
    mail = tmp_path / "mail"
    mail.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"""IMAPAccount mss
Host 127.0.0.1
Port {port}
User alice
Pass {PASSWORD}
SSLType None
AuthMechs PLAIN

IMAPStore far
Account mss

MaildirStore near
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel box
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )
    return config


def test_mbsync_two_way(imap, cast, tmp_path):
    from webmail.organise import move_entry, set_flag

    first = deliver(cast, cast.alice_box, subject="Premier")
    second = deliver(cast, cast.alice_box, subject="Second")
    deliver(cast, cast.alice_box, subject="Troisieme")
    deliver(cast, cast.cardio, subject="Pour le service")
    config = write_mbsyncrc(tmp_path, imap.port)
    mail = tmp_path / "mail"

    mbsync(config)
    assert len(files(mail / "INBOX")) == 3
    assert len(files(mail / "Partag&AOk-s" / "cardiologie@ch-troispics.mssante.fr" / "INBOX")) == 1

    by_subject = {}
    for path in files(mail / "INBOX"):
        subject = next(line for line in path.read_bytes().splitlines() if line.startswith(b"Subject:"))
        by_subject[subject.split(b": ", 1)[1].decode()] = path
    # Near side: flag one seen + flagged, delete one, move one to Archives, write a new one.
    flagged = by_subject["Premier"]
    flagged.rename(mail / "INBOX" / "cur" / (flagged.name.split(":")[0] + ":2,FS"))
    by_subject["Second"].unlink()
    moved = by_subject["Troisieme"]
    shutil.move(moved, mail / "Archives" / "cur" / (moved.name.split(",U=")[0] + ":2,S"))
    new_raw = build(cast.alice_box.address, [cast.charlie_box.address], subject="Ecrit hors ligne")
    (mail / "Archives" / "cur" / "1700000000.local.host:2,S").write_bytes(new_raw)
    # Far side, meanwhile: the webmail flags nothing of those, files a new delivery, moves nothing.
    fourth = deliver(cast, cast.alice_box, subject="Quatrieme")
    set_flag(Entry.objects.get(mailbox=cast.alice_box, message=fourth), flagged=True)

    mbsync(config)
    inbox = cast.alice_box.folder("inbox")
    archive = cast.alice_box.folder("archive")
    first_entry = Entry.objects.get(mailbox=cast.alice_box, message=first)
    assert first_entry.seen and first_entry.flagged
    assert not Entry.objects.filter(mailbox=cast.alice_box, message=second).exists()
    archived = Entry.objects.filter(folder=archive).select_related("message")
    assert sorted(e.message.subject for e in archived) == ["Ecrit hors ligne", "Troisieme"]
    assert Entry.objects.filter(mailbox=cast.alice_box, message__subject="Troisieme").count() == 1
    assert sorted(Entry.objects.filter(folder=inbox).values_list("message__subject", flat=True)) == [
        "Premier",
        "Quatrieme",
    ]
    near_inbox = files(mail / "INBOX")
    assert len(near_inbox) == 2
    fourth_file = next(p for p in near_inbox if b"Subject: Quatrieme" in p.read_bytes())
    assert "F" in fourth_file.name.rsplit(":2,", 1)[1]

    # The webmail moves a message to the trash: the next sync moves it on the near side too.
    move_entry(first_entry, cast.alice_box.folder("trash"), cast.alice)
    mbsync(config)
    assert len(files(mail / "INBOX")) == 1
    assert len(files(mail / "Corbeille")) == 1
    # Nothing changes on a sync with nothing to do, and nothing is duplicated.
    count = Entry.objects.filter(mailbox=cast.alice_box).count()
    mbsync(config)
    assert Entry.objects.filter(mailbox=cast.alice_box).count() == count
    assert Folder.objects.get(pk=archive.pk).imap_uid_next == 3


def test_offlineimap_downloads_and_uploads_flags(imap, cast, tmp_path):
    message = deliver(cast, cast.alice_box, subject="Pour offlineimap")
    mail = tmp_path / "mail"
    config = tmp_path / "offlineimaprc"
    config.write_text(
        f"""[general]
accounts = mss
metadata = {tmp_path / "meta"}

[Account mss]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = {mail}

[Repository far]
type = IMAP
remotehost = 127.0.0.1
remoteport = {imap.port}
remoteuser = alice
remotepass = {PASSWORD}
ssl = no
starttls = no
folderfilter = lambda name: name == "INBOX"
"""
    )
    env = {**os.environ, "HOME": str(tmp_path)}

    def run():
        result = subprocess.run(
            ["offlineimap", "-c", str(config), "-o", "-u", "basic"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    run()
    downloaded = files(mail / "INBOX")
    assert len(downloaded) == 1
    assert b"Subject: Pour offlineimap" in downloaded[0].read_bytes()
    path = downloaded[0]
    path.rename(mail / "INBOX" / "cur" / (path.name.split(":2,")[0] + ":2,FS"))
    run()
    entry = Entry.objects.get(mailbox=cast.alice_box, message=message)
    assert entry.seen and entry.flagged
