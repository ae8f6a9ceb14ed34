"""From outside: Celery beat started with the documented command (docs/configuration.md
"Production": `celery -A mssante beat -l info`, no `-s`) keeps its schedule file under VAR_DIR,
not in the directory it starts in (the checkout, which need not be writable and where an
untracked `celerybeat-schedule` would sit beside the code)."""

import subprocess
import sys
import time
from pathlib import Path

from tests.operations.test_log_redaction_servers import server_env

ROOT = Path(__file__).resolve().parents[2]


def wait_for_schedule(var: Path, process: subprocess.Popen, seconds: float = 60) -> list[Path]:
    deadline = time.monotonic() + seconds
    while not (found := sorted(var.glob("celerybeat-schedule*"))):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "beat wrote no schedule file under VAR_DIR"
        time.sleep(0.1)
    return found


def test_beat_keeps_its_schedule_under_var_dir(tmp_path):
    var, start_dir = tmp_path / "var", tmp_path / "start"
    var.mkdir()
    start_dir.mkdir()
    env = server_env(var, debug=False)
    # An in-memory broker of beat's own: the test sends nothing to anybody's Redis.
    env.update(CELERY_BROKER_URL="memory://", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "celery", "-A", "mssante", "beat", "-l", "info"]
    beat = subprocess.Popen(
        command, cwd=start_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert wait_for_schedule(var, beat)
    finally:
        beat.terminate()
        # Read its output while it stops: a full pipe would hold a process that logs its shutdown
        # (it timed out once on a loaded machine with `wait(20)` and the pipe never read).
        try:
            beat.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            beat.kill()
            beat.communicate()
    assert list(start_dir.iterdir()) == []
