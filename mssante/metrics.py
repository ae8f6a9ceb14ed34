"""Prometheus counters and histograms shared by every process (web, SMTP gateway, workers).

Counting across processes: with `PROMETHEUS_MULTIPROC_DIR` set (docs/operations.md), the
prometheus_client library writes each process's values to files in that folder and `/metrics`
adds them up (its multiprocess mode); without it each process counts for itself and `/metrics`
shows the web process only. Queue depths and ages are not counted here: `/metrics` reads them
from the database at scrape time (operations/metrics.py), so every process sees the same.

Labels carry codes and names of views, never an address or an id.
"""

import os

from django.core.exceptions import ImproperlyConfigured
from prometheus_client import Counter, Histogram

# prometheus_client writes a file there as the first counter is made: a folder that does not exist
# stopped every process, `manage.py check` included, on a bare FileNotFoundError of that file.
_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MULTIPROC_DIR and not os.path.isdir(_MULTIPROC_DIR):
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={_MULTIPROC_DIR!r} is not a folder: create it, empty, before the "
        "processes start (docs/operations.md, Metrics)"
    )

MESSAGES_SUBMITTED = Counter("mss_messages_submitted", "Messages accepted by the delivery path, by source.", ["source"])
MESSAGES_DELIVERED = Counter(
    "mss_messages_delivered", "Messages entered in a hosted box (one per recipient box), by source.", ["source"]
)
MESSAGES_REFUSED = Counter("mss_messages_refused", "Messages or recipients refused, by refusal code.", ["code"])
RELAY_ATTEMPTS = Counter(
    "mss_relay_attempts", "Relay attempts towards other operators that ended, by outcome.", ["outcome"]
)
AUDIT_EVENTS = Counter("mss_audit_events", "Audit events written, by action.", ["action"])
SMTP_SESSIONS = Counter("mss_smtp_sessions", "SMTP sessions opened on the inbound gateway.")
HTTP_LATENCY = Histogram(
    "mss_http_request_duration_seconds",
    "Time to answer an HTTP request, by view and status class.",
    ["view", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
