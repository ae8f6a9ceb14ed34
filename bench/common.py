"""Helpers shared by the benchmarks (run as `python bench/NAME.py`, so this folder is on sys.path)."""

import os
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse


def recreate_database(url: str) -> None:
    """Drop and create the PostgreSQL database named in `url` (a benchmark starts from nothing)."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_cpu_seconds() -> float:
    """CPU seconds (user + system) of every PostgreSQL process on this machine (backends, WAL
    writer, checkpointer), with the backends that exited meanwhile: the postmaster reaps them, so
    their time is in its children's time. Other work's queries count too: over a measured span,
    the difference is an upper bound of what the measured work cost PostgreSQL."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we listed them
            continue
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        if name.startswith("postgres"):
            fields = rest.split()  # utime, stime, cutime, cstime: fields 14-17 of proc(5)
            total += sum(int(value) for value in fields[11:15])
    return total / ticks


def start_gunicorn(name: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    """The product under gunicorn (sync workers) on 127.0.0.1:`port`, its output (the access log,
    a line per request) in a file of the temporary folder rather than on the terminal."""
    root = Path(__file__).resolve().parents[1]
    log_path = Path(tempfile.gettempdir()) / f"bench-{name}-gunicorn-{port}.log"
    print(f"gunicorn's output: {log_path}")
    command = [str(root / ".venv" / "bin" / "gunicorn"), "mssante.wsgi:application", "-k", "sync"]
    with open(log_path, "ab") as log:  # the server keeps its own copy of the descriptor
        return subprocess.Popen(
            [*command, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def server_environment(url: str, folder: Path, *, drop: tuple[str, ...] = ()) -> dict:
    """The environment of the product's servers a benchmark starts: this one without its storage,
    broker, relay and e-mail settings (nor those starting with `drop`), on the database `url`,
    files under `folder`; applied to this process too, which reads the same database."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("S3_", "CELERY_", "RELAY_", "EMAIL_", *drop))},
        "DJANGO_SETTINGS_MODULE": "mssante.settings",
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "VAR_DIR": str(folder / "var"),
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "600",
    }
    os.environ.update(env)
    return env
