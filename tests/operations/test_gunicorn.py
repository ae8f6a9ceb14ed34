"""From outside: gunicorn started as production starts it, with the repository's gunicorn.conf.py
(which gunicorn also reads on its own from the directory it starts in, as the benches do).

- Its control socket (`gunicornc`, gunicorn 25.1+) is off: two instances of one user side by side
  leave nothing at the shared default path, where each would take the socket from the other.
  With `GUNICORN_CONTROL_SOCKET` an instance has its own, and `gunicornc` reaches that instance.
- The benches' settings (bench/webmail_settings.py) keep the product's console handler: their
  gunicorn writes one access line per request, as production's does.
"""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.clients.conftest import free_port
from tests.operations.test_log_redaction_servers import serve, server_env


def gunicorn(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "mssante.wsgi", "-c", "gunicorn.conf.py", "-w", "1"] + [
        "-b",
        f"127.0.0.1:{port}",
        *extra,
    ]


def environment(tmp_path: Path, **extra: str) -> dict:
    """The servers' environment, with a home and a runtime folder of the test's own: gunicorn's
    default control socket would be $XDG_RUNTIME_DIR/gunicorn.ctl (or ~/.gunicorn/gunicorn.ctl)."""
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "run").mkdir(exist_ok=True)
    env = server_env(tmp_path, debug=False)
    env.pop("GUNICORN_CONTROL_SOCKET", None)
    env.update(HOME=str(tmp_path / "home"), XDG_RUNTIME_DIR=str(tmp_path / "run"), **extra)
    return env


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(10)


def test_no_shared_control_socket_and_one_of_its_own_when_asked(tmp_path):
    env = environment(tmp_path)
    first_port, second_port, own_port = free_port(), free_port(), free_port()
    first, _ = serve(gunicorn(first_port), env, first_port)
    try:
        second, _ = serve(gunicorn(second_port), env, second_port)
        try:
            # Both serve, and neither left a socket where the other (or gunicornc) would find it.
            assert not (tmp_path / "run" / "gunicorn.ctl").exists()
            assert not (tmp_path / "home" / ".gunicorn").exists()
            own_socket = tmp_path / "own.ctl"
            own, output = serve(gunicorn(own_port), {**env, "GUNICORN_CONTROL_SOCKET": str(own_socket)}, own_port)
            try:
                output.wait_for(lambda lines: any(f"Control socket listening at {own_socket}" in x for x in lines))
                assert own_socket.is_socket()
                answer = subprocess.run(
                    [str(Path(sys.executable).parent / "gunicornc"), "-s", str(own_socket), "-c", "show stats", "-j"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                )
                stats = json.loads(answer.stdout)
                assert (stats["pid"], stats["workers_target"]) == (own.pid, 1)
            finally:
                stop(own)
            for port in (first_port, second_port):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:  # noqa: S310
                    assert response.status == 200
            assert not (tmp_path / "run" / "gunicorn.ctl").exists()
        finally:
            stop(second)
    finally:
        stop(first)


def test_the_benches_gunicorn_writes_its_access_log(tmp_path):
    port = free_port()
    env = environment(tmp_path, DJANGO_SETTINGS_MODULE="bench.webmail_settings")
    process, output = serve(gunicorn(port), env, port)  # it answered GET /healthz
    try:
        lines = output.wait_for(lambda lines: any("gunicorn.access" in x and "/healthz" in x for x in lines))
    finally:
        stop(process)
    (access, *_) = [x for x in lines if "gunicorn.access" in x and "/healthz" in x]
    assert ' "GET /healthz HTTP/1.1" 200 ' in access
