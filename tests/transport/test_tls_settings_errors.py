"""From outside: a listener started with a certificate it cannot use stops at once, and its last
line names the setting and the path at fault (OpenSSL alone says "No such file or directory" or
"PEM lib", naming neither), as the SECRET_KEY and DATABASE_URL errors do."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import free_port
from tests.operations.test_log_redaction_servers import server_env

ROOT = Path(__file__).resolve().parents[2]


def start(command: str, env: dict) -> subprocess.CompletedProcess:
    argv = [sys.executable, "manage.py", command, "--host", "127.0.0.1", "--port", str(free_port())]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "command, cert_setting, key_setting",
    [
        ("runsmtpd", "SMTPD_TLS_CERT", "SMTPD_TLS_KEY"),
        ("runimapd", "CLIENTS_TLS_CERT", "CLIENTS_TLS_KEY"),
        ("runsubmission", "CLIENTS_TLS_CERT", "CLIENTS_TLS_KEY"),
    ],
)
def test_a_missing_certificate_or_key_is_named(tmp_path, tls_files, command, cert_setting, key_setting):
    env = server_env(tmp_path, debug=False)
    missing = str(tmp_path / "absent.pem")
    result = start(command, {**env, cert_setting: missing, key_setting: tls_files.key})
    assert result.returncode != 0
    assert last_line(result).endswith(f"{cert_setting}={missing!r} cannot be read: No such file or directory")
    result = start(command, {**env, cert_setting: tls_files.cert, key_setting: missing})
    assert result.returncode != 0
    assert last_line(result).endswith(f"{key_setting}={missing!r} cannot be read: No such file or directory")


def test_a_key_of_another_certificate_is_named(tmp_path, tls_files):
    other_key = tmp_path / "other.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(other_key), "2048"], check=True, capture_output=True)
    env = server_env(tmp_path, debug=False)
    result = start("runsmtpd", {**env, "SMTPD_TLS_CERT": tls_files.cert, "SMTPD_TLS_KEY": str(other_key)})
    assert result.returncode != 0
    line = last_line(result)
    assert f"SMTPD_TLS_CERT={tls_files.cert!r} and SMTPD_TLS_KEY={str(other_key)!r}" in line
    assert "the key does not match the certificate" in line
