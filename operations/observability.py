"""Structured logs and request ids (issue 14 item 4).

- Every HTTP request gets an id: the `X-Request-ID` header the reverse proxy set (when it looks
  like an id), else a new one; it is echoed in the response and put on every log line written
  while the request runs. Celery tasks use their task id the same way.
- With `LOG_FORMAT=json` each line is one JSON object: time, level, logger, message, request_id
  (and the exception type, never its arguments' values beyond the message). The messages of
  this code base carry ids and codes only; `tests/operations/test_logs.py` sends, reads and
  downloads sentinel strings and finds none of them in the log.
- Paths are another matter: a client may put a patient's address (`<INS>@patient.mssante.fr`,
  RULES.md §3) in a URL, and Django's "Not Found: /api/…", the development server's and
  gunicorn's access lines print it. `RedactFilter`, on the console handler every logger writes
  through (gunicorn's too, gunicorn.conf.py), masks patient addresses and INS-shaped numbers in
  each line's final message and exception text, whatever the format (docs/operations.md "Logs").
"""

import contextvars
import json
import logging
import re
import time
import traceback
import uuid

from django.utils import timezone

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


MASK = "***"
# An INS (the NIR: sex 1-4 or 7-8, year, month, department — Corsica's 2A/2B —, commune, order,
# then the 2-digit key; RULES.md §3), with its key (15 characters) or without (13). It stands
# alone: a longer run of digits (a 14-digit SIRET or timestamp, a 20-digit id) holds 13 or 15 of
# them without being one, so no digit or letter may touch it, except the two hex digits of a
# percent-escape before it (`%2F1850575123456`). Over-masking is the chosen risk: any lone 13- or
# 15-digit number starting with 1-4, 7 or 8 (an epoch in milliseconds) is masked too; ids of
# this code base (database ids, UUIDs, request ids, dates) never have that shape.
INS_SHAPED_RE = re.compile(
    # The first digit is matched before the look-behind is checked: most positions fail at once.
    r"[1-478](?:(?<![0-9A-Za-z].)|(?<=%[0-9A-Fa-f]{2}.))"
    r"[0-9]{4}(?:[0-9]{2}|2[ABab])[0-9]{6}(?:[0-9]{2})?"
    r"(?![0-9A-Za-z])"
)


class RedactFilter(logging.Filter):
    """Masks patient addresses (`***@patient.mssante.fr`, the local part whatever it is, the `@`
    raw or percent-encoded) and INS-shaped numbers in a record's final message (`msg % args`,
    which the plain and JSON formats both print) and in its exception text. A record with
    nothing to mask is left as it is."""

    def __init__(self, patient_domain: str = "patient.mssante.fr"):
        super().__init__()
        self.domain = patient_domain.lower()
        self.address_re = re.compile(
            r"[A-Za-z0-9._+%-]{1,64}?(?:@|%40)" + re.escape(patient_domain), flags=re.IGNORECASE
        )
        self.address_mask = f"{MASK}@{patient_domain}"

    def redact(self, text: str) -> str:
        if self.domain in text.lower():  # the address pattern is the slow one: only where it can match
            text = self.address_re.sub(self.address_mask, text)
        return INS_SHAPED_RE.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # Arguments that do not fit: the handler's error report would print them as they are.
            message, record.msg, record.args = "", self.redact(f"{record.msg} (unformattable arguments)"), ()
        masked = self.redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            masked = self.redact(text)
            if masked != text:  # the plain format prints exc_text when set
                record.exc_text = masked
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": timezone.now().isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the frames, not the exception's text: a database error's text can
            # quote the row it refused.
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(entry, ensure_ascii=False)


class RequestIdMiddleware:
    """First in the chain: sets the request id, times the request for the latency histogram."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from mssante.metrics import HTTP_LATENCY

        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # Set, not reset at the end: Django logs an error response ("Not Found: …") after the
        # middleware chain returned, and that line must carry the id too. The next request on
        # this thread sets its own.
        request_id_var.set(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match else "") or "unmatched"
        HTTP_LATENCY.labels(view=view, status=f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
        response["X-Request-ID"] = request_id
        return response


_task_tokens: dict[str, contextvars.Token] = {}


def bind_task_id(task_id: str | None) -> None:
    """Celery task_prerun: the task id stands for the request id on the task's log lines."""
    if task_id:
        _task_tokens[task_id] = request_id_var.set(task_id)


def unbind_task_id(task_id: str | None) -> None:
    """Celery task_postrun: back to the id of whatever ran the task (a request, in eager mode)."""
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        request_id_var.reset(token)
