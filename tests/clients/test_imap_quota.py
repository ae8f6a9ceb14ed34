"""IMAP QUOTA (RFC 9208, read by RFC 2087 clients too): each box a quota root named by its
address, STORAGE in units of 1024 octets, the very numbers the webmail shows under the folder
list; read through Python's imaplib and a raw socket against the real server."""

import re
import socket

import pytest
from django.urls import reverse

from mailboxes.models import Entry, Folder, Mailbox
from tests.clients.conftest import deliver
from tests.factories import PASSWORD
from webmail.organise import trash_entry

pytestmark = pytest.mark.integration

CARDIO = "Partag&AOk-s/cardiologie@ch-troispics.mssante.fr"


def webmail_shows(client, box) -> tuple[int, int]:
    """(used, quota) in octets, read from the indicator of the webmail's page for `box`."""
    html = client.get(reverse("webmail:folder", args=[box.pk, box.folder(Folder.Role.INBOX).pk])).content.decode()
    meter = re.search(r'<meter id="quota-meter" min="0" max="(\d+)" value="(\d+)"', html)
    percent = re.search(r"(\d+)\xa0% utilisé", html)
    assert meter and percent, "the webmail shows the quota"
    quota, used = int(meter.group(1)), int(meter.group(2))
    assert int(percent.group(1)) == round(used * 100 / quota)
    return used, quota


def in_kib(used: int, quota: int) -> tuple[int, int]:
    return -(-used // 1024), quota // 1024


def imap_storage(client, mailbox="INBOX") -> tuple[str, int, int]:
    """GETQUOTAROOT through imaplib: (root, usage, limit)."""
    typ, data = client.getquotaroot(mailbox)
    assert typ == "OK", data
    (roots,), (quota,) = data
    root = roots.decode().split(" ", 1)[1]
    match = re.fullmatch(r"(\S+) \(STORAGE (\d+) (\d+)\)", quota.decode())
    assert match, quota
    assert match.group(1) == root
    typ, again = client.getquota(root)
    assert (typ, again) == ("OK", [quota])
    return root, int(match.group(2)), int(match.group(3))


def test_quota_is_advertised(imap, cast):
    client = imap.client()
    assert {"QUOTA", "QUOTA=RES-STORAGE"} <= set(client.capabilities)
    client.login("alice", PASSWORD)
    typ, data = client.capability()
    assert {"QUOTA", "QUOTA=RES-STORAGE"} <= set(data[0].decode().split())


def test_the_numbers_are_the_webmails_and_follow_delivery_and_the_emptied_trash(imap, cast, client):
    client.force_login(cast.alice)
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(quota_bytes=50 * 1024 * 1024 + 300)
    deliver(cast, cast.alice_box, subject="Premier")
    imap_client = imap.client("alice", PASSWORD)

    root, usage, limit = imap_storage(imap_client)
    assert root == cast.alice_box.address
    used, quota = webmail_shows(client, cast.alice_box)
    assert used > 0 and (usage, limit) == in_kib(used, quota) == (-(-used // 1024), 51200)

    # A delivery of about 200 KB: both show it at once.
    big = deliver(
        cast, cast.alice_box, subject="Imagerie", attachments=[("irm.pdf", "application/pdf", b"%PDF" * 50_000)]
    )
    _root, usage_after, limit_after = imap_storage(imap_client)
    used_after, quota_after = webmail_shows(client, cast.alice_box)
    assert used_after == used + big.size
    assert (usage_after, limit_after) == in_kib(used_after, quota_after)
    assert usage_after - usage >= big.size // 1024

    # The message to the trash: still counted; the trash emptied: handed back, on both.
    trash_entry(Entry.objects.get(mailbox=cast.alice_box, message=big), cast.alice)
    assert imap_storage(imap_client)[1:] == (usage_after, limit_after)
    response = client.post(reverse("webmail:empty_trash", args=[cast.alice_box.pk]))
    assert response.status_code in (200, 302)
    _root, usage_purged, limit_purged = imap_storage(imap_client)
    assert webmail_shows(client, cast.alice_box) == (used, quota)
    assert (usage_purged, limit_purged) == (usage, limit) == in_kib(used, quota)

    # A shared box is its own quota root, with its own numbers.
    cardio_used = 3 * 1024 * 1024 + 1
    Mailbox.objects.filter(pk=cast.cardio.pk).update(used_bytes=cardio_used, quota_bytes=4 * 1024**3)
    root, usage, limit = imap_storage(imap_client, f'"{CARDIO}/INBOX"')
    assert root == cast.cardio.address
    assert (usage, limit) == in_kib(*webmail_shows(client, cast.cardio)) == (3 * 1024 + 1, 4 * 1024**2)
    imap_client.logout()


class Raw:
    """A bare IMAP exchange over a socket: what an RFC 2087 client sends and reads."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"* OK")

    def command(self, tag: str, text: str) -> list[str]:
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = self.file.readline().decode().rstrip("\r\n")
            lines.append(line)
            if line.startswith(f"{tag} "):
                return lines

    def close(self):
        self.file.close()
        self.sock.close()


def test_raw_exchange_setquota_refused_unknown_root_and_deleted_storage(imap, cast):
    deliver(cast, cast.alice_box, subject="A garder")
    second = deliver(cast, cast.alice_box, subject="A effacer")
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(quota_bytes=10 * 1024**3)
    box = Mailbox.objects.get(pk=cast.alice_box.pk)
    address = cast.alice_box.address
    raw = Raw(imap.port)
    assert raw.command("a1", f"LOGIN alice {PASSWORD}")[-1].startswith("a1 OK")

    expected = f"* QUOTA {address} (STORAGE {-(-box.used_bytes // 1024)} {10 * 1024**2})"
    assert raw.command("a2", "GETQUOTAROOT inbox") == [
        f"* QUOTAROOT INBOX {address}",
        expected,
        "a2 OK GETQUOTAROOT termine",
    ]
    assert raw.command("a3", f'GETQUOTA "{address.upper()}"')[:-1] == [expected]
    answer = raw.command("a4", f'SETQUOTA "{address}" (STORAGE 99999999)')
    assert answer[-1].startswith("a4 NO [NOPERM] ") and len(answer) == 1
    assert raw.command("a5", 'GETQUOTA "bob@example.org"')[-1].startswith("a5 NO [NONEXISTENT]")
    assert raw.command("a6", "GETQUOTAROOT Nulle-part")[-1].startswith("a6 NO [NONEXISTENT]")
    # Another user's box is no quota root of Alice's.
    assert raw.command("a7", f'GETQUOTA "{cast.charlie_box.address}"')[-1].startswith("a7 NO")

    # STATUS DELETED / DELETED-STORAGE (RFC 9208 §4.1.4): what EXPUNGE hands back, in octets.
    assert raw.command("b1", "SELECT INBOX")[-1].startswith("b1 OK")
    assert raw.command("b2", "STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)")[0] == (
        "* STATUS INBOX (MESSAGES 2 DELETED 0 DELETED-STORAGE 0)"
    )
    uid = Entry.objects.get(mailbox=cast.alice_box, message=second).imap_uid
    assert raw.command("b3", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")[-1].startswith("b3 OK")
    assert raw.command("b4", "STATUS INBOX (DELETED-STORAGE DELETED)")[0] == (
        f"* STATUS INBOX (DELETED-STORAGE {second.size} DELETED 1)"
    )
    before = Mailbox.objects.get(pk=box.pk).used_bytes
    assert raw.command("b5", "EXPUNGE")[-1].startswith("b5 OK")
    after = Mailbox.objects.get(pk=box.pk).used_bytes
    assert before - after == second.size
    assert raw.command("b6", "GETQUOTAROOT INBOX")[1] == (
        f"* QUOTA {address} (STORAGE {-(-after // 1024)} {10 * 1024**2})"
    )
    assert raw.command("b7", "STATUS INBOX (FOO)")[-1].startswith("b7 BAD")
    raw.command("z", "LOGOUT")
    raw.close()


def test_the_units_of_every_quota_figure(imap, cast):
    """RFC 9208: STORAGE (§5.1) is "in units of 1024 octets"; DELETED-STORAGE (§4.1.4) has no unit
    of its own and names its figure: what EXPUNGE reclaims, at worst "the sum of the RFC822.SIZE
    of the messages with the \\Deleted flag set" — octets, as RFC822.SIZE is (Cyrus IMAP reports it
    so too). Three messages of a few KB, two marked: STATUS gives the octets FETCH gives, and
    EXPUNGE moves STORAGE by those octets, rounded to the 1024-octet unit."""
    for n in range(3):
        deliver(
            cast,
            cast.alice_box,
            subject=f"Piece {n}",
            attachments=[("cr.pdf", "application/pdf", b"%PDF" * (900 * (n + 1)))],
        )
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(quota_bytes=1024**3)
    address = cast.alice_box.address
    raw = Raw(imap.port)
    assert raw.command("a1", f"LOGIN alice {PASSWORD}")[-1].startswith("a1 OK")
    assert raw.command("a2", "SELECT INBOX")[-1].startswith("a2 OK")
    sizes = {}
    for line in raw.command("a3", "FETCH 1:* (UID RFC822.SIZE)")[:-1]:
        match = re.fullmatch(r"\* \d+ FETCH \((?:UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+))\)", line)
        assert match, line
        uid, size = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        sizes[int(uid)] = int(size)
    assert len(sizes) == 3 and all(size > 1024 for size in sizes.values())
    marked = sorted(sizes)[:2]
    assert raw.command("a4", f"UID STORE {marked[0]},{marked[1]} +FLAGS.SILENT (\\Deleted)")[-1].startswith("a4 OK")
    reclaimable = sizes[marked[0]] + sizes[marked[1]]
    assert raw.command("a5", "STATUS INBOX (DELETED DELETED-STORAGE)")[0] == (
        f"* STATUS INBOX (DELETED 2 DELETED-STORAGE {reclaimable})"
    )

    def storage() -> tuple[int, int]:
        line = raw.command("q", f'GETQUOTA "{address}"')[0]
        match = re.fullmatch(rf"\* QUOTA {re.escape(address)} \(STORAGE (\d+) (\d+)\)", line)
        assert match, line
        return int(match.group(1)), int(match.group(2))

    used = Mailbox.objects.get(pk=cast.alice_box.pk).used_bytes
    assert storage() == (-(-used // 1024), 1024**2)
    assert raw.command("a6", "EXPUNGE")[-1].startswith("a6 OK")
    assert Mailbox.objects.get(pk=cast.alice_box.pk).used_bytes == used - reclaimable
    assert storage() == (-(-(used - reclaimable) // 1024), 1024**2)
    assert (
        raw.command("a7", "STATUS INBOX (DELETED DELETED-STORAGE)")[0] == "* STATUS INBOX (DELETED 0 DELETED-STORAGE 0)"
    )
    raw.command("z", "LOGOUT")
    raw.close()
