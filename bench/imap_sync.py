"""IMAP benchmark (issue 11): a 10,000-message box synced by mbsync from this server and from
Dovecot serving the same messages from a Maildir, side by side in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_imap .venv/bin/python bench/imap_sync.py

Drops and re-creates the database of DATABASE_URL, migrates, seeds one doctor with a box, and
delivers N messages (default 10,000: 90 % text of 2–12 KB, 10 % with a 60 KB PDF) through the
delivery path; the same bytes are written to a Maildir. Then:

1. `manage.py runimapd` (subprocess) and a private Dovecot (`dovecot -c` with its own base_dir,
   a static passdb, listener on a high port, Maildir under the temporary folder);
2. a full first `mbsync` of INBOX from each into an empty Maildir, cold (first access: our UID
   assignment, Dovecot's index build) then again into a new empty Maildir (warm), each timed;
   peak RSS of our server (VmHWM) and of Dovecot's imap process;
3. FETCH of 1,000 ENVELOPEs (imaplib, random windows, 30 rounds) on both: p50 / p95;
4. IDLE wake-up: a client idles, the bench delivers a message through the delivery path, time
   until `* n EXISTS` (PostgreSQL NOTIFY), 20 rounds, and with notifications off (polling every
   IMAP_POLL_SECONDS), plus the cost of the poll itself (one snapshot of the 10,000 rows).
Targets: mbsync ≤ 1.5 × Dovecot's time, peak RSS ≤ 200 MB.
"""

import argparse
import imaplib
import os
import pwd
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from common import free_port, recreate_database, server_environment  # noqa: E402 - bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "ch-bench.mssante.fr"
PEER_BOX = f"correspondant@{DOMAIN}"
USER, PASSWORD = "banc", "Banc-Imap-2026-mot-de-passe"  # PASSWORD becomes an app password in seed()
WORDS = "patient bilan cardiaque echographie traitement ordonnance consultation resultat analyse suivi".split()


def vm_hwm_kb(pid: int) -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def make_message(index: int, rng: random.Random) -> bytes:
    message = EmailMessage()
    message["From"] = f"Dr Correspondant <{PEER_BOX}>"
    message["To"] = f"dr.banc@{DOMAIN}"
    message["Subject"] = f"Compte rendu {index} : {rng.choice(WORDS)} {rng.choice(WORDS)}"
    message["Date"] = "Mon, 23 Nov 2026 08:00:00 +0100"
    message["Message-ID"] = f"<bench-{index}@{DOMAIN}>"
    lines = rng.randint(30, 160)
    message.set_content("\n".join(" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(lines)))
    if index % 10 == 0:
        message.add_attachment(rng.randbytes(60_000), maintype="application", subtype="pdf", filename=f"cr-{index}.pdf")
    return message.as_bytes()


def seed():
    global PASSWORD
    from django.contrib.auth import get_user_model

    from accounts.app_passwords import create_app_password
    from mailboxes.models import Domain, Mailbox, Professional, Structure

    structure = Structure.objects.create(name="CH du banc", finess="750000013")
    domain = Domain.objects.create(name=DOMAIN, structure=structure)
    user = get_user_model().objects.create_user(USER, password=PASSWORD)
    doctor = Professional.objects.create(
        first_name="Dr", last_name="Banc", profession="medecin", rpps="10000000005", structure=structure, user=user
    )
    box = Mailbox.objects.create(
        kind=Mailbox.Kind.NOMINATIVE, address=f"dr.banc@{DOMAIN}", domain=domain, structure=structure, owner=doctor
    )
    # With DEBUG off a second factor is required of professionals: mail clients use an app password.
    _row, PASSWORD = create_app_password(user, "mbsync")
    other = Professional.objects.create(
        first_name="Correspondant", last_name="X", profession="medecin", rpps="10000000013", structure=structure
    )
    peer = Mailbox.objects.create(
        kind=Mailbox.Kind.ORGANISATIONAL, address=PEER_BOX, domain=domain, structure=structure, responsible=other
    )
    return box, peer


def deliver_all(n: int, maildir: Path, box, peer) -> int:
    from mailboxes.delivery import send_message

    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    total = 0
    started = time.monotonic()
    for index in range(n):
        raw = make_message(index, rng)
        send_message(raw, envelope_from=PEER_BOX, envelope_to=[box.address], source="webmail", sender_mailbox=peer)
        (maildir / "cur" / f"{1700000000 + index}.{index}.bench:2,").write_bytes(raw)
        total += len(raw)
    print(f"delivered {n} messages ({total / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s")
    return total


def start_ours(env: dict, port: int, listen: bool = True) -> subprocess.Popen:
    env = {**env, "IMAP_LISTEN": "true" if listen else "false"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runimapd", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in proc.stdout:
        if "ready" in line:
            return proc
    raise RuntimeError("runimapd did not start")


def start_dovecot(tmp: Path, maildir: Path, port: int) -> tuple[subprocess.Popen, Path]:
    account = pwd.getpwnam("dovecot")
    for path in [maildir, *maildir.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
    (tmp / "home").mkdir(exist_ok=True)
    os.chown(tmp / "home", account.pw_uid, account.pw_gid)
    config = tmp / "dovecot.conf"
    config.write_text(
        f"""base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{maildir}
first_valid_uid = {account.pw_uid}
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={tmp}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            imaplib.IMAP4("127.0.0.1", port).logout()
            return proc, config
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("dovecot did not start: " + (tmp / "dovecot.log").read_text()[-2000:])


def mbsync_once(tmp: Path, port: int, name: str) -> float:
    near = tmp / f"near-{name}"
    shutil.rmtree(near, ignore_errors=True)
    near.mkdir()
    config = tmp / f"mbsyncrc-{name}"
    config.write_text(
        f"""IMAPAccount a
Host 127.0.0.1
Port {port}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs PLAIN

IMAPStore far
Account a

MaildirStore near
Path {near}/
Inbox {near}/INBOX

Channel c
Far :far:
Near :near:
Patterns INBOX
Create Near
SyncState *
"""
    )
    started = time.monotonic()
    result = subprocess.run(["mbsync", "-q", "-c", str(config), "-a"], capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    count = sum(1 for sub in ("cur", "new") for _ in (near / "INBOX" / sub).iterdir())
    return elapsed, count


def envelopes(port: int, rounds: int = 30) -> tuple[float, float]:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(USER, PASSWORD)
    _typ, data = client.select("INBOX")
    total = int(data[0])
    rng = random.Random(5)
    times = []
    for _ in range(rounds):
        start = rng.randint(1, total - 999)
        began = time.perf_counter()
        typ, rows = client.fetch(f"{start}:{start + 999}", "(UID ENVELOPE)")
        times.append(time.perf_counter() - began)
        assert typ == "OK" and len(rows) >= 1000
    client.logout()
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.95) - 1] * 1000


def idle_wakeups(port: int, box, peer, rounds: int = 20) -> tuple[float, float]:
    from mailboxes.delivery import send_message

    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(USER, PASSWORD)
    client.select("INBOX")
    times = []
    rng = random.Random(99)
    for index in range(rounds):
        tag = b"Z%d" % index  # a raw IDLE of our own, beside imaplib's tags
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        time.sleep(rng.uniform(0.05, 0.3))  # deliveries land at random moments of the poll cycle
        raw = make_message(900_000 + index + int(time.time() * 1000) % 100_000, rng)
        began = time.perf_counter()
        send_message(raw, envelope_from=PEER_BOX, envelope_to=[box.address], source="webmail", sender_mailbox=peer)
        while True:
            line = client.readline()
            if line.endswith(b"EXISTS\r\n"):
                break
        times.append(time.perf_counter() - began)
        client.send(b"DONE\r\n")
        while not client.readline().startswith(tag):
            pass
    client.logout()
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.95) - 1] * 1000


def poll_cost(folder_id: int, rounds: int = 20) -> float:
    from clients.imap.backend import snapshot

    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        snapshot(folder_id)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def imap_children(dovecot_pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(r"^Name:\s+imap$", text, re.M) and f"PPid:\t{dovecot_pid}" in text:
            out.append(int(status.parent.name))
    return out


def dovecot_imap_rss(dovecot_pid: int) -> int:
    """Peak RSS (kB) of Dovecot's live imap processes (children of the master)."""
    best = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if re.search(r"^Name:\s+imap$", text, re.M) and f"PPid:\t{dovecot_pid}" in text:
            best = max(best, int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)))
    return best


class RssSampler:
    """Samples Dovecot's per-connection imap processes while mbsync runs (they exit with it)."""

    def __init__(self, dovecot_pid: int):
        import threading

        self.pid = dovecot_pid
        self.peak = 0
        self.cpu: dict[int, float] = {}  # imap process -> its CPU seconds, last seen
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, dovecot_imap_rss(self.pid))
            for child in imap_children(self.pid):
                try:
                    self.cpu[child] = cpu_seconds(child)
                except (OSError, IndexError):
                    pass

    def close(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.peak


def _environment(url: str) -> tuple[Path, dict]:
    """The tools the run needs, checked first; a temporary folder and the servers' environment."""
    # Dovecot's imap service comes with dovecot-imapd, not dovecot-core (which the side-by-side
    # bench installs): say so before minutes of delivery, not after.
    for tool, package in (("/usr/lib/dovecot/imap", "dovecot-imapd"), ("mbsync", "isync")):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y {package}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    os.chmod(tmp, 0o755)
    return tmp, server_environment(url, tmp, drop=("CLIENTS_TLS",))


def _report(n, rows, rss, envelope, wakeups, cost) -> None:
    our_rss, dovecot_rss = rss
    env_ours, env_dovecot = envelope
    wake, wake_poll = wakeups
    print(f"\nmbsync full first sync of {n} messages (INBOX, empty Maildir each time)")
    print(f"{'server':<14}{'cold s':>10}{'warm s':>10}{'server CPU s (both)':>22}")
    for label, cold, warm, server_cpu in rows:
        print(f"{label:<14}{cold:>10.2f}{warm:>10.2f}{server_cpu:>22.2f}")
    print(
        f"ratio this/Dovecot: cold {rows[0][1] / rows[1][1]:.2f}x, warm {rows[0][2] / rows[1][2]:.2f}x (target <= 1.5x)"
    )
    print(f"peak RSS: this server {our_rss:.0f} MB (target <= 200 MB), Dovecot imap process {dovecot_rss:.0f} MB")
    print(
        f"FETCH 1,000 ENVELOPE: this server p50 {env_ours[0]:.0f} ms p95 {env_ours[1]:.0f} ms; Dovecot p50 {env_dovecot[0]:.0f} ms p95 {env_dovecot[1]:.0f} ms"
    )
    print(
        f"IDLE wake-up after a delivery: NOTIFY p50 {wake[0]:.0f} ms p95 {wake[1]:.0f} ms; polling every 1 s p50 {wake_poll[0]:.0f} ms p95 {wake_poll[1]:.0f} ms"
    )
    print(f"one poll (snapshot of the {n + 30}-message folder): {cost:.1f} ms")
    print(f"load average at the end {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_imap")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    tmp, env = _environment(url)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc {os.cpu_count()}; load average {load()}")
    ours = dovecot = None
    try:
        recreate_database(url)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        box, peer = seed()
        maildir = tmp / "Maildir"
        deliver_all(args.n, maildir, box, peer)
        our_port, dovecot_port = free_port(), free_port()
        ours = start_ours(env, our_port)
        dovecot, _config = start_dovecot(tmp, maildir, dovecot_port)

        rows = []
        sampler = None
        for label, port in (("this server", our_port), ("Dovecot 2.3", dovecot_port)):
            if port == dovecot_port:
                sampler = RssSampler(dovecot.pid)
            before = cpu_seconds(ours.pid)
            cold, count = mbsync_once(tmp, port, label.split()[0] + "-cold")
            warm, count2 = mbsync_once(tmp, port, label.split()[0] + "-warm")
            assert count == count2 == args.n, (count, count2)
            server_cpu = cpu_seconds(ours.pid) - before if port == our_port else sum(sampler.cpu.values())
            rows.append((label, cold, warm, server_cpu))
        our_rss = vm_hwm_kb(ours.pid) / 1024
        dovecot_rss = sampler.close() / 1024
        env_ours = envelopes(our_port)
        env_dovecot = envelopes(dovecot_port)
        wake = idle_wakeups(our_port, box, peer)
        ours.terminate()
        ours.wait(10)
        ours = start_ours(env, our_port, listen=False)
        wake_poll = idle_wakeups(our_port, box, peer, rounds=10)
        cost = poll_cost(box.folder("inbox").pk)

        _report(args.n, rows, (our_rss, dovecot_rss), (env_ours, env_dovecot), (wake, wake_poll), cost)
    finally:
        for proc in (ours, dovecot):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
