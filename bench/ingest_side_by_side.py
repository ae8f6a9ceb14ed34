"""SMTP ingest side by side with Postfix → Dovecot (issue 17), in one run on this machine.

    flock /tmp/mss-bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_side_by_side \\
        .venv/bin/python bench/ingest_side_by_side.py [--rounds 5] [--port-base 26020]

- Installs Debian's `postfix`, `dovecot-core` and `dovecot-lmtpd` with apt-get when `postfix` or
  `dovecot` is missing (nothing else system-wide: no configuration of theirs is touched).
- Starts a PRIVATE Postfix (`postfix -c DIR start`; its own main.cf/master.cf, queue, data
  directory and log file under a temporary folder, smtpd on 127.0.0.1:PORT_BASE+1, chroot off)
  delivering over LMTP into a PRIVATE Dovecot (`dovecot -F -c FILE`; its own base_dir, LMTP on
  127.0.0.1:PORT_BASE+2, a Maildir per recipient under the temporary folder). Stock durability
  on both (Postfix fsyncs its queue file before 250, Dovecot's `mail_fsync = optimized`).
- The product: drops and re-creates the database of DATABASE_URL, migrates it, seeds the boxes of
  bench/smtp_ingest.py, starts `manage.py runsmtpd --processes 2` on PORT_BASE (local file
  storage in the temporary folder: raw files fsynced before 250) and `manage.py runscheduler`
  (the embedded runner, which indexes the search documents every 2 s).
- The same client on both sides: 4 processes (one SMTP connection each, like
  `smtp-source -s 4`), each sending its share of distinct messages (own Message-ID; a distinct
  PDF per message) to 20 recipients of the bench domain.
- Interleaved rounds, the product then Postfix, `--rounds` times for each of: 10 KB text, a
  message with a 100 KB PDF, a 139 KB plain-text body. The product's rate counts messages
  answered 250 (committed) over the time of the sending; Postfix's counts messages delivered
  into the Maildirs over the time from the first byte sent to the last file in a Maildir.
- Search freshness on the product's rounds: a poller reads every 100 ms which messages of the
  round the indexer has written (`search_pending` false) and takes now − created_at.
- Peak RSS growth of the gateway for one 25 MB message (as bench/smtp_ingest.py), on a fresh
  server.

Prints each round with the load average, the median ratio product/Postfix per kind, freshness
p50/p95/max, and checks that the database holds every message the product acknowledged.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pwd
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import recreate_database  # noqa: E402 - bench/ is on sys.path
from smtp_ingest import (
    DOMAIN,
    PEER,
    ROOT,
    bench_env,
    cpu_seconds,
    fake_pdf,
    load,
    machine,
    make_message,
    postgres_cpu_seconds,
    seed,
    stop_server,
    vm_hwm_kb,
)

SENDER = f"dr.externe@{PEER}"
KINDS = {
    "10 KB text": {"body_bytes": 10_000},
    "100 KB PDF": {"body_bytes": 2_000, "pdf": 100_000},
    "139 KB text": {"body_bytes": 139_000},
}


# --- the client (the same program on both sides) ------------------------------------------


def _client(port: int, messages: list[tuple[str, bytes]], results, go) -> None:
    accepted, errors = 0, 0
    go.wait()
    started = time.time()
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
        client.ehlo("mx.operateur-externe.mssante.fr")
        for to, raw in messages:
            try:
                client.sendmail(SENDER, [to], raw)
                accepted += 1
            except smtplib.SMTPException:
                errors += 1
    results.put((started, time.time(), accepted, errors))


def send_all(port: int, messages: list[tuple[str, bytes]], clients: int) -> tuple[float, float, int, int]:
    """(first start, last end, accepted, errors) with `clients` processes, one connection each."""
    context = multiprocessing.get_context("fork")
    results, go = context.Queue(), context.Event()
    procs = [
        context.Process(target=_client, args=(port, messages[i::clients], results, go), daemon=True)
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.2)  # every client forked and waiting
    go.set()
    got = [results.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    return min(g[0] for g in got), max(g[1] for g in got), sum(g[2] for g in got), sum(g[3] for g in got)


def build(kind: str, addresses: list[str], n: int) -> list[tuple[str, bytes]]:
    spec = KINDS[kind]
    batch = []
    for i in range(n):
        to = addresses[i % len(addresses)]
        pdf = fake_pdf(spec["pdf"]) if "pdf" in spec else None
        batch.append((to, make_message(to, body_bytes=spec["body_bytes"], pdf=pdf)))
    return batch


# --- Postfix and Dovecot, private ---------------------------------------------------------


def ensure_packages() -> None:
    if shutil.which("postfix") and shutil.which("dovecot") and Path("/usr/lib/dovecot/lmtp").exists():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "postfix", "dovecot-core", "dovecot-lmtpd"], check=True, env=env)


def start_dovecot(tmp: Path, port: int) -> tuple[subprocess.Popen, Path]:
    account = pwd.getpwnam("dovecot")
    base = tmp / "dovecot"
    for sub in ("maildir", "home"):
        (base / sub).mkdir(parents=True)
        os.chown(base / sub, account.pw_uid, account.pw_gid)
    config = base / "dovecot.conf"
    config.write_text(
        f"""base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
postmaster_address = postmaster@{DOMAIN}
mail_location = maildir:{base}/maildir/%n
first_valid_uid = {account.pw_uid}
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={base}/home/%n
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
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
    wait_port(port, lambda: (base / "dovecot.log").read_text()[-2000:] if (base / "dovecot.log").exists() else "")
    return proc, base / "maildir"


def start_postfix(tmp: Path, port: int, lmtp_port: int) -> Path:
    conf = tmp / "postfix"
    for sub in ("etc", "queue", "data"):
        (conf / sub).mkdir(parents=True)
    os.chown(conf / "data", pwd.getpwnam("postfix").pw_uid, pwd.getpwnam("postfix").pw_gid)
    (conf / "etc" / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {conf}/queue
data_directory = {conf}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.bench-postfix.invalid
mydomain = bench-postfix.invalid
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
message_size_limit = 30000000
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = static:ok
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
maillog_file = {conf}/maillog
maillog_file_prefixes = {tmp}
"""
    )
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"  # no chroot: the private queue is not set up as a jail
            line = " ".join(fields)
        lines.append(line)
    (conf / "etc" / "master.cf").write_text("\n".join(lines) + "\n")
    subprocess.run(["postfix", "-c", str(conf / "etc"), "start"], check=True, capture_output=True)
    wait_port(port, lambda: (conf / "maillog").read_text()[-2000:] if (conf / "maillog").exists() else "")
    return conf / "etc"


def stop_postfix(etc: Path) -> None:
    subprocess.run(["postfix", "-c", str(etc), "stop"], check=False, capture_output=True)


def wait_port(port: int, log) -> None:
    import socket

    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}:\n{log()}")


def maildir_count(maildir: Path) -> int:
    total = 0
    for user in os.scandir(maildir):
        for sub in ("new", "cur"):
            try:
                total += sum(1 for _ in os.scandir(os.path.join(user.path, sub)))
            except FileNotFoundError:
                pass
    return total


# --- the product --------------------------------------------------------------------------


def start_gateway(env: dict, port: int, processes: int) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "runsmtpd", "--host", "127.0.0.1", "--port", str(port)]
    if processes > 1:
        command += ["--processes", str(processes)]
    env = {**env, "PGAPPNAME": "bench-gateway"}  # libpq names its connections (BackendCpu)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    while b"ready" not in output:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"runsmtpd did not start:\n{output.decode(errors='replace')}")
        output += line
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc


class Freshness:
    """Seconds from a message's commit (created_at) to its search document: a thread polls every
    100 ms, during the round and after it, until every message of the round is indexed."""

    def __init__(self, url: str):
        import psycopg

        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)

    def during(self, send) -> tuple[tuple, list[float]]:
        import psycopg

        since = self.last_id()
        lags: list[float] = []
        expected: list[int | None] = [None]

        def poll():
            seen: set[int] = set()
            with psycopg.connect(self.url, autocommit=True) as conn:
                deadline = None
                while True:
                    rows = conn.execute(
                        "SELECT id, extract(epoch FROM created_at) FROM mailboxes_message "
                        "WHERE id > %s AND NOT search_pending",
                        [since],
                    ).fetchall()
                    now = time.time()
                    for pk, created in rows:
                        if pk not in seen:
                            seen.add(pk)
                            lags.append(now - float(created))
                    if expected[0] is not None:
                        deadline = deadline or time.monotonic() + 120
                        if len(seen) >= expected[0] or time.monotonic() > deadline:
                            return
                    time.sleep(0.1)

        thread = threading.Thread(target=poll)
        thread.start()
        result = send()
        expected[0] = result[2]
        thread.join()
        return result, lags

    def last_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM mailboxes_message").fetchone()[0]

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM mailboxes_message").fetchone()[0]


class BackendCpu:
    """CPU of the PostgreSQL backends of this database by `application_name` (PGAPPNAME, set for
    the gateway and the scheduler): the database's work for each, without the rest of the
    machine's (other engineers' tests) nor the freshness poller's. A backend seen once is
    followed until it exits; those that come and go between two readings are not counted."""

    def __init__(self, conn):
        self.conn = conn
        self.pids: dict[int, str] = {}

    def read(self, names: tuple[str, ...]) -> tuple[float, ...]:
        ticks = os.sysconf("SC_CLK_TCK")
        rows = self.conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
        self.pids.update({pid: name for pid, name in rows if name in names})
        totals = dict.fromkeys(names, 0.0)
        for pid, name in self.pids.items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            totals[name] += (int(fields[11]) + int(fields[12])) / ticks
        return tuple(totals[name] for name in names)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2, help="gateway processes (runsmtpd --processes)")
    parser.add_argument("--port-base", type=int, default=26020)
    parser.add_argument("-n", type=int, nargs=3, default=[1500, 800, 400], help="messages per round, per kind")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS))
    parser.add_argument("--no-rss", action="store_true", help="skip the 25 MB message")
    parser.add_argument(
        "--no-freshness", action="store_true", help="do not poll the search queue (a tree without it, for a baseline)"
    )
    return parser.parse_args()


def _environment(url: str, tmp: Path) -> dict:
    """The product's processes' environment (its own VAR_DIR under `tmp`), also this one's."""
    var_dir = tmp / "product"
    var_dir.mkdir()
    env = bench_env(url, var_dir)
    os.environ.update(env)
    return env


def _seeded(url: str, env: dict) -> list[str]:
    """A fresh database, migrated, with the recipients' boxes."""
    recreate_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    addresses = seed()
    from django.db import connection

    connection.close()
    return addresses


def _rss_growth(env: dict, port: int, addresses: list[str]) -> tuple[int, int]:
    """The gateway's peak RSS growth for one 25 MB message, and its size."""
    gateway = start_gateway(env, port, 1)
    try:
        send_all(port, [(addresses[0], make_message(addresses[0], body_bytes=10_000)) for _ in range(5)], 1)
        before = vm_hwm_kb(gateway.pid)
        big = make_message(addresses[1], pdf=fake_pdf(18_500_000))
        size = len(big)
        _, _, ok, _ = send_all(port, [(addresses[1], big)], 1)
        del big
        after = vm_hwm_kb(gateway.pid)
        assert ok == 1, "the 25 MB message was refused"
        return (after - before) * 1024, size
    finally:
        stop_server(gateway)


class Run:
    """The servers of one run (the product's gateway and indexer, a private Postfix and Dovecot),
    its rounds and what they measured."""

    NAMES = ("bench-gateway", "bench-indexer")

    def __init__(self, args, env: dict, tmp: Path, url: str, addresses: list[str]) -> None:
        self.args, self.addresses = args, addresses
        self.port, self.pf_port, lmtp_port = args.port_base, args.port_base + 1, args.port_base + 2
        self.procs: list[subprocess.Popen] = []
        self.postfix_etc = None
        try:
            self._start(env, tmp, lmtp_port)
        except BaseException:
            self.stop()  # what did start
            raise
        self.fresh = Freshness(url)
        self.backends = BackendCpu(self.fresh.conn)
        self.rows: dict[str, list[tuple[float, float]]] = {kind: [] for kind in args.kinds}
        self.cpu_rows: dict[str, list[tuple[float, ...]]] = {kind: [] for kind in args.kinds}
        self.lags: list[float] = []
        self.acknowledged = 0

    def _start(self, env: dict, tmp: Path, lmtp_port: int) -> None:
        dovecot, self.maildir = start_dovecot(tmp, lmtp_port)
        self.procs.append(dovecot)
        self.postfix_etc = start_postfix(tmp, self.pf_port, lmtp_port)
        self.gateway = start_gateway(env, self.port, self.args.processes)
        self.procs.append(self.gateway)
        self.scheduler = subprocess.Popen(
            [sys.executable, "manage.py", "runscheduler"],
            cwd=ROOT,
            env={**env, "PGAPPNAME": "bench-indexer"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(self.scheduler)

    def stop(self) -> None:
        if self.postfix_etc is not None:
            stop_postfix(self.postfix_etc)
        for proc in reversed(self.procs):
            stop_server(proc)

    def warm_up(self) -> None:
        """Both sides once (connections, caches, Postfix's processes, Dovecot's Maildirs)."""
        warm = build("10 KB text", self.addresses, 200)
        send_all(self.port, warm, self.args.clients)
        send_all(self.pf_port, warm, self.args.clients)
        deadline = time.monotonic() + 60
        while maildir_count(self.maildir) < len(warm) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.acknowledged += len(warm)

    def _cpu(self) -> tuple[float, ...]:
        gateway, scheduler = cpu_seconds(self.gateway.pid), cpu_seconds(self.scheduler.pid)
        return (gateway, scheduler, *self.backends.read(self.NAMES), postgres_cpu_seconds())

    def product(self, batch) -> tuple[float, tuple[float, ...], int, int]:
        """The product: rate of 250s (each after the commit), then the indexer's lag; the CPU of
        the gateway, the scheduler (the indexer) and PostgreSQL until the round is indexed."""
        cpu_before = self._cpu()
        if self.args.no_freshness:
            (start, end, ok, errors), round_lags = send_all(self.port, batch, self.args.clients), []
        else:
            send = lambda: send_all(self.port, batch, self.args.clients)  # noqa: E731
            (start, end, ok, errors), round_lags = self.fresh.during(send)
        cpu_after = self._cpu()
        self.acknowledged += ok
        self.lags += round_lags
        cpu_ms = tuple((b - a) * 1000 / max(ok, 1) for a, b in zip(cpu_before, cpu_after, strict=True))
        return ok / (end - start), cpu_ms, errors, ok

    def postfix(self, batch) -> tuple[float, int, int]:
        """Postfix → Dovecot: from the first byte sent to the last file in a Maildir."""
        before = maildir_count(self.maildir)
        start, _end, pf_ok, pf_errors = send_all(self.pf_port, batch, self.args.clients)
        deadline = time.monotonic() + 600
        while maildir_count(self.maildir) < before + pf_ok and time.monotonic() < deadline:
            time.sleep(0.01)
        delivered = maildir_count(self.maildir) - before
        return delivered / (time.time() - start), pf_errors, pf_ok - delivered

    def round(self, round_no: int, kind: str, n: int) -> None:
        batch = build(kind, self.addresses, n)
        round_load = load().split()[0]
        ours, cpu_ms, errors, _ok = self.product(batch)
        theirs, pf_errors, missing = self.postfix(batch)
        self.rows[kind].append((ours, theirs))
        self.cpu_rows[kind].append(cpu_ms)
        note = (
            f" (errors: product {errors}, postfix {pf_errors}, not delivered {missing})"
            if (errors or pf_errors or missing)
            else ""
        )
        print(
            f"| {round_no} | {kind} | {round_load} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}{note} "
            "| " + " | ".join(f"{ms:.2f}" for ms in cpu_ms) + " |",
            flush=True,
        )

    def report(self, growth, size) -> None:
        print()
        print(f"load average at the end: {load()} (2 cores shared with other engineers' work)")
        print(
            "| kind | message bytes | product median msg/s | Postfix→Dovecot median msg/s | median ratio "
            "| median CPU ms/msg: gateway | indexer | gateway's backends | indexer's | all PostgreSQL |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for kind, pairs in self.rows.items():
            sample = build(kind, self.addresses[:1], 1)[0][1]
            ratio = statistics.median(o / t for o, t in pairs)
            cpu = [statistics.median(c[i] for c in self.cpu_rows[kind]) for i in range(5)]
            print(
                f"| {kind} | {len(sample):,} | {statistics.median(o for o, _ in pairs):,.0f} "
                f"| {statistics.median(t for _, t in pairs):,.0f} | {ratio:.2f} "
                "| " + " | ".join(f"{ms:.2f}" for ms in cpu) + " |"
            )
        print()
        if self.lags:
            lags = self.lags
            print(
                f"search freshness over {len(lags)} messages (commit → searchable): p50 {percentile(lags, 0.5):.2f} s, "
                f"p95 {percentile(lags, 0.95):.2f} s, max {max(lags):.2f} s"
            )
        if growth is not None:
            print(
                f"one message of {size:,} bytes: gateway peak RSS growth {growth / 1e6:,.1f} MB = {growth / size:.2f}x"
            )
        committed = self.fresh.count()
        print(f"messages in the database: {committed} (acknowledged by the product: {self.acknowledged})")
        if committed != self.acknowledged:
            raise SystemExit("the database does not hold every acknowledged message")


def main() -> None:
    args = _arguments()
    counts = dict(zip(KINDS, args.n, strict=True))
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_side_by_side")
    if not url.startswith("postgres"):
        raise SystemExit("DATABASE_URL must point at PostgreSQL (the database is dropped and re-created)")
    ensure_packages()
    tmp = Path(tempfile.mkdtemp(prefix="bench-side-by-side-"))
    os.chmod(tmp, 0o755)
    env = _environment(url, tmp)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load()}")
    print(
        f"postfix {subprocess.run(['postconf', '-d', '-h', 'mail_version'], capture_output=True, text=True).stdout.strip()}, "
        f"dovecot {subprocess.run(['dovecot', '--version'], capture_output=True, text=True).stdout.strip()}"
    )
    run = None
    try:
        addresses = _seeded(url, env)
        autovacuum = subprocess.run(
            ["psql", url, "-tAc", "SHOW autovacuum"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if autovacuum != "on":
            # Each message's search flag, cleared by the indexer, leaves a dead row that only
            # autovacuum takes away: without it the indexer's rounds grow slower (bench/RESULTS.md).
            print(f"PostgreSQL autovacuum is {autovacuum or 'unknown'}: later rounds pay for earlier rounds' dead rows")
        growth = size = None
        if not args.no_rss:
            growth, size = _rss_growth(env, args.port_base, addresses)
        run = Run(args, env, tmp, url, addresses)
        run.warm_up()
        run.acknowledged += 0 if args.no_rss else 6
        print()
        print(
            "| round | kind | load (1 min) | product msg/s | Postfix→Dovecot msg/s | ratio "
            "| CPU ms/msg: gateway | indexer | its backends: gateway's | indexer's | all PostgreSQL |"
        )
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for round_no in range(1, args.rounds + 1):
            for kind in args.kinds:
                run.round(round_no, kind, counts[kind])
        run.report(growth, size)
    finally:
        if run is not None:
            run.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
