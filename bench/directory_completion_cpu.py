"""CPU of one directory completion request, in process (issue 12): the server's own cost, which
the machine's load inflates far less than latency.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_directory .venv/bin/python bench/directory_completion_cpu.py

Runs on a database where bench/directory_bench.py imported the directory (nothing is imported
here). Builds the benchmark's professional session (second factor enrolled), then sends
POST /annuaire/completion/ through Django's WSGI handler (the whole middleware stack, as
gunicorn calls it; no HTTP) for the benchmark's kind of fragments, and prints, per request, the
CPU of this process (`time.process_time`) and of its PostgreSQL backend (/proc), for:

- floor: a one-letter term (the same request, session, user and second-factor checks, no search);
- prefix: the first 3–6 letters of a last name;
- contains: 4–6 letters from inside a structure name, a town or a last name.

`--roots A B` alternates the code of several checkouts (each in its own process, `--rounds`
times each): an A/B of the same database under the same load. `--profile prefix|contains`
prints a cProfile (process time) of that kind instead.
"""

import argparse
import cProfile
import io
import os
import pstats
import random
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def setup(root: Path):
    sys.path[:0] = [str(root), str(root / "bench")]
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.webmail_settings"
    os.environ["DIRECTORY_SEARCH_RATE_PER_MINUTE"] = "1000000"
    import django

    django.setup()


def wsgi_environ(term: str, session: str, csrf: str) -> dict:
    body = urllib.parse.urlencode({"q": term}).encode()
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/annuaire/completion/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_COOKIE": f"sessionid={session}; csrftoken={csrf}",
        "HTTP_X_CSRFTOKEN": csrf,
        "HTTP_REFERER": "http://127.0.0.1:8000/pro/ecrire/",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def backend_cpu() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(rounds: int, samples: int, profile: str) -> None:
    from directory_bench import fragments, session_cookies  # noqa: E402 - bench/ is on sys.path
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    # As gunicorn would, minus closing the connection between requests (CONN_MAX_AGE keeps it):
    # the backend's CPU is read on the same connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    prefixes, contains = fragments(samples, random.Random(12))
    session, csrf = session_cookies()
    app = WSGIHandler()

    def run(terms):
        for term in terms:
            status = []
            response = app(wsgi_environ(term, session, csrf), lambda s, h, e=None: status.append(s))
            b"".join(response)
            response.close()
            assert status[0].startswith("200"), (term, status)

    kinds = {"floor": ["x"] * len(prefixes), "prefix": prefixes, "contains": contains}
    run(prefixes + contains)  # warm: translations, URL resolver, prepared statements
    if profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        run(kinds[profile] * 2)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        return
    for _ in range(rounds):
        for kind, terms in kinds.items():
            backend, began = backend_cpu(), time.process_time()
            run(terms * 2)
            count = len(terms) * 2
            python = (time.process_time() - began) * 1000 / count
            database = (backend_cpu() - backend) * 1000 / count
            print(f"{kind}\t{python:.2f}\t{database:.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--roots", nargs="*", default=[], help="checkouts to alternate (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--profile", choices=["prefix", "contains", "floor"], default="")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL=postgres://… to a database the directory benchmark imported.")
    if args.child or not args.roots:
        setup(Path(args.child or HERE.parent))
        measure(1 if args.child else args.rounds, args.samples, args.profile)
        return
    print(f"load average before {os.getloadavg()[0]:.2f}")
    print("| round | code | floor CPU: process / backend | prefix | contains |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for number in range(1, args.rounds + 1):
        for root in args.roots:
            out = subprocess.run(
                [sys.executable, __file__, "--child", root, "--samples", str(args.samples)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            cells = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines() if "\t" in line}
            row = " | ".join(f"{cells[k][0]} / {cells[k][1]} ms" for k in ("floor", "prefix", "contains"))
            print(f"| {number} | {root} | {row} |", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
