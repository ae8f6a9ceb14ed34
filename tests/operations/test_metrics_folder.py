"""From outside: with `PROMETHEUS_MULTIPROC_DIR` naming a folder that does not exist, a command
stops with a line that names the variable (prometheus_client alone fails on a FileNotFoundError
of a file inside it), and with the folder made it runs."""

import subprocess
import sys
from pathlib import Path

from tests.operations.test_log_redaction_servers import server_env

ROOT = Path(__file__).resolve().parents[2]


def check(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_missing_metrics_folder_is_named(tmp_path):
    folder = tmp_path / "prometheus"
    env = {**server_env(tmp_path, debug=False), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    result = check(env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"django.core.exceptions.ImproperlyConfigured: PROMETHEUS_MULTIPROC_DIR={str(folder)!r}")
    folder.mkdir()
    result = check(env)
    assert result.returncode == 0, result.stderr
