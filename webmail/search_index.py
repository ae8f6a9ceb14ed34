"""The webmail's search index, written off the ingest path (issue 17 item 2; issue 16 item 6).

The queue is the message row itself: `Message.search_pending` is True when a message is written
(the delivery path, a draft saved, an IMAP APPEND or COPY) in that same transaction, so nothing
can be lost between the commit and the queue. `index_pending()` — the Celery task
`webmail.index_search`, run every SEARCH_INDEX_INTERVAL_SECONDS by beat or by
`manage.py runscheduler` — takes the pending rows in batches (`SELECT … FOR UPDATE SKIP LOCKED`
on PostgreSQL, so several workers share the work), writes their documents in one statement per
batch and clears the flag in the same transaction. The periodic run is also the sweeper: a
worker that dies mid-batch rolls back, and the rows are still pending for the next run.

The document of a message: its subject, sender and recipients (names and addresses), attachment
names, and the first SEARCH_BODY_CHARS characters of its text body, all folded by `fold()`
(lower case, accents removed, œ → oe), so that a search is accent- and case-insensitive both ways
on every database: "echographie", "Échographie" and "ÉCHOGRAPHIE" all find "échographie".
- PostgreSQL: `webmail_message_search.document` is `to_tsvector('french', folded text)`
  (GIN-indexed), searched with `websearch_to_tsquery('french', folded query)`.
- SQLite: `webmail_message_search.document` is the folded text, searched word by word with LIKE.

A search then misses words beyond the first SEARCH_BODY_CHARS characters (4,000) of a long body
(the bound is chosen by measurement: `to_tsvector('french')` costs about 0.25 ms of PostgreSQL
CPU per 1,000 characters; bench/RESULTS.md, branch i17-index), the text inside attachments (never
indexed), and for a few seconds a message just received.
"""

from __future__ import annotations

import re
import time
import unicodedata

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Substr

from mailboxes.models import Attachment, Message

COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
ADDRESS_PUNCTUATION = str.maketrans("@.-_+", "     ")
FILENAME_PUNCTUATION = str.maketrans("._-", "   ")


def fold(text: str) -> str:
    """Lower case without accents (NFKD, combining marks dropped; œ, æ → oe, ae; ß → ss by
    `casefold`): the same on both sides. ASCII text only needs `lower()`. The ligatures are
    replaced after `casefold` (which turns Œ, Æ into œ, æ) with `str.replace`: a `translate`
    table costs about 0.2 ms per 1,000 characters of accented text, five times the rest."""
    if text.isascii():
        return text.lower()
    folded = COMBINING.sub("", unicodedata.normalize("NFKD", text)).casefold()
    return folded.replace("œ", "oe").replace("æ", "ae")


def _people(people) -> str:
    words = []
    for person in people or []:
        if isinstance(person, dict):
            words.append(str(person.get("name") or ""))
            words.append(str(person.get("address") or "").translate(ADDRESS_PUNCTUATION))
    return " ".join(words)


def document_text(row: dict, filenames: list[str]) -> str:
    parts = [
        row["subject"] or "",
        row["from_name"] or "",
        (row["from_address"] or "").translate(ADDRESS_PUNCTUATION),
        _people(row["to"]),
        _people(row["cc"]),
        " ".join(name.translate(FILENAME_PUNCTUATION) for name in filenames),
        row["body"] or "",
    ]
    return fold(" ".join(parts))


def index_batch(size: int | None = None) -> int:
    """Index one batch of pending messages; returns how many were indexed."""
    size = size or settings.SEARCH_INDEX_BATCH
    with transaction.atomic():
        ids = list(
            Message.objects.filter(search_pending=True)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:size]
        )
        if not ids:
            return 0
        rows = (
            Message.objects.filter(id__in=ids)
            .annotate(body=Substr("text_body", 1, settings.SEARCH_BODY_CHARS))
            .values("id", "subject", "from_name", "from_address", "to", "cc", "body")
        )
        filenames: dict[int, list[str]] = {}
        for message_id, filename in Attachment.objects.filter(message_id__in=ids).values_list("message_id", "filename"):
            filenames.setdefault(message_id, []).append(filename)
        documents = [(row["id"], document_text(row, filenames.get(row["id"], []))) for row in rows]
        write_documents(documents)
        Message.objects.filter(id__in=ids).update(search_pending=False)
    return len(ids)


def write_documents(documents: list[tuple[int, str]]) -> None:
    if not documents:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "INSERT INTO webmail_message_search (message_id, document) "
                "SELECT u.id, to_tsvector('french'::regconfig, u.doc) FROM unnest(%s::bigint[], %s::text[]) "
                "AS u(id, doc) ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document",
                [[pk for pk, _ in documents], [doc for _, doc in documents]],
            )
        else:
            cursor.executemany(
                "INSERT INTO webmail_message_search (message_id, document) VALUES (%s, %s) "
                "ON CONFLICT (message_id) DO UPDATE SET document = excluded.document",
                documents,
            )


def index_pending(max_seconds: float | None = None) -> int:
    """Index pending messages batch after batch until none is left or `max_seconds` passed (the
    next periodic run goes on). Returns how many were indexed."""
    max_seconds = settings.SEARCH_INDEX_MAX_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + max_seconds
    total = 0
    while True:
        done = index_batch()
        total += done
        if not done or time.monotonic() >= deadline:
            return total


def mark_all_pending(since=None) -> int:
    """`manage.py reindex_search`: every message (or those received since a date) queued again."""
    rows = Message.objects.filter(search_pending=False)
    if since is not None:
        rows = rows.filter(created_at__date__gte=since)
    return rows.update(search_pending=True)
