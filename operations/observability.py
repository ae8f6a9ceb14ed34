"""Structured logs and request ids (issue 14 item 4).

- Every HTTP request gets an id: the `X-Request-ID` header the reverse proxy set (when it looks
  like an id), else a new one; it is echoed in the response and put on every log line written
  while the request runs. Celery tasks use their task id the same way.
- With `LOG_FORMAT=json` each line is one JSON object: time, level, logger, message, request_id
  (and the exception type, never its arguments' values beyond the message). The messages of
  this code base carry ids and codes only; `tests/operations/test_logs.py` sends, reads and
  downloads sentinel strings and finds none of them in the log.
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
