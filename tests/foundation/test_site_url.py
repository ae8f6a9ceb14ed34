"""Issue 16 item 2: links in e-mails follow the port `scripts/run` serves on, unless SITE_URL
says otherwise (one documented setting, docs/configuration.md)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)"


def settings_site_url(**env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "PORT", "DJANGO_SETTINGS_MODULE")}
    base.update({"DJANGO_SETTINGS_MODULE": "mssante.settings", "DEBUG": "true", **env})
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def run_script_environment(**env) -> str:
    """The lines of scripts/run that set PORT and SITE_URL, run by bash as the script runs them."""
    script = (ROOT / "scripts" / "run").read_text()
    lines = [line for line in script.splitlines() if line.startswith(("export PORT=", "export SITE_URL="))]
    assert len(lines) == 2, lines
    base = {k: v for k, v in os.environ.items() if k not in ("SITE_URL", "PORT")}
    base.update(env)
    result = subprocess.run(
        ["bash", "-c", "set -eu\n" + "\n".join(lines) + '\necho "$SITE_URL"'],
        env=base,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_site_url_follows_the_port_when_not_set():
    assert settings_site_url(PORT="23456") == "http://127.0.0.1:23456"
    assert settings_site_url() == "http://127.0.0.1:8000"


def test_an_explicit_site_url_wins_and_loses_its_trailing_slash():
    assert settings_site_url(PORT="23456", SITE_URL="https://mss.example.fr/") == "https://mss.example.fr"


def test_scripts_run_derives_the_links_from_its_port():
    assert run_script_environment(PORT="23457") == "http://127.0.0.1:23457"
    assert run_script_environment() == "http://127.0.0.1:8000"
    assert run_script_environment(PORT="23457", SITE_URL="https://mss.example.fr") == "https://mss.example.fr"


def check_deploy(**env) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        # The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process (async.E001 in a deployment).
        if k not in ("SITE_URL", "PORT", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    base.update(
        DEBUG="false",
        SECRET_KEY="k8Zq-7vR2mN9pL4xT6wY1sB3dF5gH0jKaQeWcVbUiOpLzXnMyRt",
        ALLOWED_HOSTS="mss.example.fr",
        **env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_warns_when_links_in_e_mails_would_not_reach_the_service():
    # Forgotten, SITE_URL is the loopback address: invitations sent by `provision` would carry it.
    for env in ({}, {"SITE_URL": "http://mss.example.fr"}, {"SITE_URL": "https://localhost:8443"}):
        result = check_deploy(**env)
        assert result.returncode == 0, result.stderr  # a warning, as Django's own deployment checks
        assert "(operations.W001) SITE_URL is " in result.stderr, (env, result.stderr)
    result = check_deploy(SITE_URL="https://mss.example.fr", DATABASE_URL="postgres://mss@db.example.fr/mss")
    assert "operations.W001" not in result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_warns_when_a_service_would_run_on_the_local_sqlite_file():
    """A service started without DATABASE_URL uses VAR_DIR's SQLite file, apart from the others."""
    result = check_deploy(SITE_URL="https://mss.example.fr")
    assert result.returncode == 0, result.stderr
    assert "(operations.W002) The database is the local SQLite file " in result.stderr
    assert "DATABASE_URL is not set for this process" in result.stderr
