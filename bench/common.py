"""Helpers shared by the benchmarks (run as `python bench/NAME.py`, so this folder is on sys.path)."""

import os
import socket
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
