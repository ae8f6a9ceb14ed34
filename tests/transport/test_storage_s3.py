"""Object storage for real (issue 3 item 10): raw messages and attachments in S3 through
django-storages, tested against SeaweedFS on loopback, which checks request signatures.

A download always goes through the access-checked view, never a public URL.
"""

import os
import smtplib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from mailboxes.models import Attachment, Message, TrustedDomain
from tests.clients.conftest import PORTS
from tests.transport.conftest import s3_storages
from tests.transport.test_smtp_gateway import PEER, PEER_SENDER, make_raw

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"compte rendu " * 700 + b"\n%%EOF\n"


@pytest.fixture
def s3(seaweedfs, settings):
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    settings.STORAGES = s3_storages(seaweedfs, prefix=prefix)
    return prefix


def keys_under(seaweedfs, prefix):
    listing = seaweedfs.client.list_objects_v2(Bucket=seaweedfs.bucket, Prefix=f"{prefix}/")
    return {item["Key"][len(prefix) + 1 :] for item in listing.get("Contents", [])}


def test_attachment_received_over_smtp_lands_in_s3_and_downloads_only_for_its_owner(
    cast, seaweedfs, s3, start_gateway, client
):
    TrustedDomain.objects.create(name=PEER)
    gateway = start_gateway()
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as smtp:
        assert (
            smtp.sendmail(PEER_SENDER, [cast.alice_box.address], make_raw(cast.alice_box.address, attachment=PDF)) == {}
        )
    message = Message.objects.get()
    attachment = Attachment.objects.get(message=message)
    assert keys_under(seaweedfs, s3) == {message.raw.name, attachment.file.name}
    stored = seaweedfs.client.get_object(Bucket=seaweedfs.bucket, Key=f"{s3}/{attachment.file.name}")["Body"].read()
    assert stored == PDF

    # The bucket is not public: an unsigned request is refused.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{seaweedfs.endpoint}/{seaweedfs.bucket}/{s3}/{attachment.file.name}", timeout=5)  # noqa: S310
    assert refused.value.code == 403

    client.force_login(cast.alice)
    response = client.get(f"/operateur/piece-jointe/{attachment.pk}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Disposition"].startswith("attachment")

    client.force_login(cast.charlie)
    assert client.get(f"/operateur/piece-jointe/{attachment.pk}").status_code == 404


def test_a_wrong_secret_key_is_refused_and_the_peer_is_told_to_retry(cast, seaweedfs, settings, start_gateway):
    settings.STORAGES = s3_storages(seaweedfs, secret="not-the-secret", prefix="wrong")
    with pytest.raises(ClientError) as error:
        default_storage.save("probe.txt", ContentFile(b"x"))
    # (HEAD first, for the name: a 403 without a body, so no error code to read.)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # Storage down for the gateway is a temporary problem: 451, nothing half-stored.
    TrustedDomain.objects.create(name=PEER)
    gateway = start_gateway()
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.mail(PEER_SENDER)[0] == 250
        assert smtp.rcpt(cast.alice_box.address)[0] == 250
        code, reply = smtp.data(make_raw(cast.alice_box.address, attachment=PDF))
    assert (code, reply[:5]) == (451, b"4.3.0")
    assert not Message.objects.exists()


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on, from /proc: its socket inodes, matched in the
    kernel's tables of listening sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_seaweedfs_listens_only_on_the_ports_it_was_given(seaweedfs):
    """Twelve distinct ports, taken like every other test server's (MSS_TEST_PORTS when set), and
    none of SeaweedFS's defaults (8333, 9333, 8888…) besides."""
    given = set(seaweedfs.ports.values())
    assert len(given) == len(seaweedfs.ports)
    listening = listening_ports(seaweedfs.pid)
    assert int(seaweedfs.endpoint.rsplit(":", 1)[1]) in listening
    assert listening <= given, listening - given
    if os.environ.get("MSS_TEST_PORTS"):
        assert given <= set(PORTS)
