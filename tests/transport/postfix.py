"""A private Postfix 3.7 instance as another operator's MTA (ENVIRONMENT.md "Real mail peers").

Its own config, queue and data directories under a temporary folder (readable by the `postfix`
user, so not under pytest's private tmp), smtpd on a loopback port, its log in a file. Mail to
its own domain is accepted, then handed to `next_hop_port` (the operator's mailbox server, an
aiosmtpd sink in the tests): a refusal there becomes Postfix's asynchronous non-delivery report
(RFC 3464), sent to our hosted domain through our gateway's port.

With `maildirs` (local parts of its domain) Postfix is instead that operator's final MTA: its
`virtual` agent delivers its domain's mail into one Maildir per box under the folder (adding
`Return-Path:` and `Delivered-To:`), refuses other local parts, and relays our domains (`our_domain`
and `also_ours`, e.g. the patient domain) to our gateway. `mailbox(peer, local)` reads a box.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from tests.transport.conftest import free_port, wait_until

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
virtual   unix  -       n       n       -       -       virtual
"""


def postfix_available() -> bool:
    return shutil.which("postfix") is not None and os.geteuid() == 0


def _delivery_lines(domain: str, conf: Path, folder: Path, maildirs) -> list[str]:
    """main.cf lines for the peer's own domain: relayed to its next hop, or delivered into Maildirs."""
    if not maildirs:
        return [f"relay_domains = {domain}", "relay_recipient_maps ="]
    mail = folder / "mail"
    mail.mkdir()
    shutil.chown(mail, "postfix", "postfix")
    (conf / "boxes").write_text("".join(f"{local}@{domain} {local}/\n" for local in maildirs))
    return [
        "relay_domains =",
        f"virtual_mailbox_domains = {domain}",
        f"virtual_mailbox_base = {mail}",
        f"virtual_mailbox_maps = texthash:{conf / 'boxes'}",
        "virtual_minimum_uid = 1",
        f"virtual_uid_maps = static:{os.stat(mail).st_uid}",
        f"virtual_gid_maps = static:{os.stat(mail).st_gid}",
    ]


def start_postfix(
    *,
    domain: str,
    our_domain: str,
    gateway_port: int,
    next_hop_port: int | None = None,
    also_ours: tuple[str, ...] = (),
    maildirs: tuple[str, ...] = (),
    smtputf8: bool = False,
) -> SimpleNamespace:
    """`smtputf8`: Postfix's own default (`smtputf8_enable = yes`), as a peer runs it."""
    folder = Path(tempfile.mkdtemp(prefix="mss-postfix-"))
    folder.chmod(0o755)
    conf, queue, data = folder / "conf", folder / "queue", folder / "data"
    for path in (conf, queue, data):
        path.mkdir()
    shutil.chown(data, "postfix")
    port = free_port()
    routes = [f"{name} smtp:[127.0.0.1]:{gateway_port}" for name in (our_domain, *also_ours)]
    if not maildirs:
        routes.insert(0, f"{domain} smtp:[127.0.0.1]:{next_hop_port}")
    (conf / "transport").write_text("".join(f"{line}\n" for line in routes))
    (conf / "main.cf").write_text(
        "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {queue}",
                f"data_directory = {data}",
                "mail_owner = postfix",
                "setgid_group = postdrop",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                f"myhostname = {domain}",
                f"mydomain = {domain}",
                "myorigin = $myhostname",
                "mydestination =",
                *_delivery_lines(domain, conf, folder, maildirs),
                "mynetworks = 127.0.0.0/8",
                "alias_maps =",
                "alias_database =",
                f"transport_maps = texthash:{conf / 'transport'}",
                "smtpd_relay_restrictions = permit_mynetworks, permit_auth_destination, reject",
                "smtp_tls_security_level = none",
                f"smtputf8_enable = {'yes' if smtputf8 else 'no'}",
                "message_size_limit = 30000000",
                # A 451 from our gateway (SQLite busy while the test thread writes) is retried
                # within seconds, as a peer retries, instead of after Postfix's default minutes.
                "queue_run_delay = 1s",
                "minimal_backoff_time = 1s",
                "maximal_backoff_time = 2s",
                f"maillog_file_prefixes = {folder}",
                f"maillog_file = {folder / 'maillog'}",
                "",
            ]
        )
    )
    (conf / "master.cf").write_text(MASTER_CF.format(port=port))
    peer = SimpleNamespace(folder=folder, conf=conf, port=port, log=folder / "maillog")
    subprocess.run(["postfix", "-c", str(conf), "start"], check=True, capture_output=True)

    def listening():
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout=20, interval=0.1)
    return peer


def stop_postfix(peer: SimpleNamespace) -> None:
    subprocess.run(["postfix", "-c", str(peer.conf), "stop"], capture_output=True)
    shutil.rmtree(peer.folder, ignore_errors=True)


@contextmanager
def other_operator(cast, settings, start_gateway, domain: str, **options):
    """Another operator's Postfix for `domain`, trusted by our gateway (started here), relaying
    our structure's domain to it: the set-up of every test with a real peer; `options` go to
    `start_postfix`."""
    from mailboxes.models import TrustedDomain

    assert postfix_available(), "Postfix (Debian package) and root are needed for this test"
    settings.TRUST_ALL_MSSANTE = False
    TrustedDomain.objects.create(name=domain)
    gateway = start_gateway()
    peer = start_postfix(domain=domain, our_domain=cast.d_troispics.name, gateway_port=gateway.port, **options)
    try:
        yield peer
    finally:
        stop_postfix(peer)


def maillog(peer: SimpleNamespace) -> str:
    return peer.log.read_text(errors="replace") if peer.log.exists() else ""


def mailbox(peer: SimpleNamespace, local: str) -> list[bytes]:
    """The messages Postfix delivered into a box of its domain (Maildir `new/`), oldest first."""
    new = peer.folder / "mail" / local / "new"
    if not new.is_dir():
        return []
    return [path.read_bytes() for path in sorted(new.iterdir(), key=lambda path: path.stat().st_mtime_ns)]


def queue_is_empty(peer: SimpleNamespace) -> bool:
    """Postfix's queue holds nothing (`postqueue -p` says so): everything it took is delivered
    or bounced."""
    listing = subprocess.run(
        ["postqueue", "-c", str(peer.conf), "-p"], capture_output=True, text=True, check=False
    ).stdout
    return "Mail queue is empty" in listing
