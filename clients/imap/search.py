"""SEARCH (RFC 3501 §6.4.4): the search keys, read into a tree, then answered by one database
query on the folder's entries and their messages (the fields the store parsed: subject,
addresses, text, dates, size, flags). Header fields the store does not keep (HEADER with any
other name, BCC) are read from the stored headers of the candidate messages.

Text keys (SUBJECT, FROM, TO, CC, BODY, TEXT, HEADER Subject/From/To/Cc) ignore accents and case
on both sides (issue 16 item 6): the needle and the stored fields are folded by the webmail's
`webmail.search_index.fold()` (one implementation), then matched as substrings, as RFC 3501 asks.
The webmail's index is not used for this: on PostgreSQL it holds stemmed words (a tsvector), not
text a substring can be found in, and it lags behind delivery. Instead one pass over the folder's
messages (only the columns the keys need, streamed) answers every text key of the command; the
sets of matching UIDs then enter the database query like the other keys.

Dates: BEFORE/ON/SINCE compare the internal date (arrival in the box), SENT* the Date header,
both as calendar days in the server's time zone (TIME_ZONE), as RFC 3501 says.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from clients.imap.mime import header_end, parse_headers
from clients.imap.protocol import BadCommand, Reader, parse_sequence_set, sequence_members, shown
from webmail.search_index import fold

MONTHS = {
    m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
}
FOLDED_HEADERS = ("subject", "from", "to", "cc")  # HEADER <field> matched as that key
STORED_HEADERS = {
    "message-id": ("message__message_id",),
    "in-reply-to": ("message__in_reply_to",),
    "references": ("message__references",),
}
# The text keys matched on folded text: the message columns each one reads.
FOLDED_FIELDS = {
    "SUBJECT": ("subject",),
    "FROM": ("from_address", "from_name"),
    "TO": ("to",),
    "CC": ("cc",),
    "BODY": ("text_body",),
    "TEXT": ("subject", "from_address", "from_name", "to", "cc", "text_body"),
}
FLAG_KEYS = {
    "ANSWERED": ("answered", True),
    "UNANSWERED": ("answered", False),
    "DELETED": ("imap_deleted", True),
    "UNDELETED": ("imap_deleted", False),
    "DRAFT": ("is_draft", True),
    "UNDRAFT": ("is_draft", False),
    "FLAGGED": ("flagged", True),
    "UNFLAGGED": ("flagged", False),
    "SEEN": ("seen", True),
    "UNSEEN": ("seen", False),
    "OLD": None,
    "NEW": ("seen", False),
    "RECENT": "none",
    "ALL": None,
}


@dataclass
class Key:
    name: str
    args: tuple = ()


def parse_date(reader: Reader) -> datetime.date:
    text = reader.astring().decode("ascii", "replace")
    try:
        day, month, year = text.split("-")
        return datetime.date(int(year), MONTHS[month.lower()], int(day))
    except (ValueError, KeyError):
        raise BadCommand(f"date invalide : {shown(text)} (attendue : 1-Dec-2026)") from None


# How deep parentheses, NOT and OR may nest. Mail clients nest a few levels; without a bound a
# command of thousands of "NOT " or "(" overflowed Python's stack (parsing, then compiling the
# query), which answered "NO [UNAVAILABLE] Erreur temporaire" and logged a traceback.
MAX_DEPTH = 50


def parse_keys(reader: Reader, depth: int = 0) -> list[Key]:
    keys = [parse_key(reader, depth)]
    while not reader.at_end() and reader.peek() != 41:  # ')'
        reader.space()
        keys.append(parse_key(reader, depth))
    return keys


def parse_key(reader: Reader, depth: int = 0) -> Key:
    if depth >= MAX_DEPTH:
        raise BadCommand(f"criteres imbriques sur plus de {MAX_DEPTH} niveaux")
    if reader.maybe(b"("):
        keys = parse_keys(reader, depth + 1)
        reader.expect(b")")
        return Key("AND", tuple(keys))
    char = reader.peek()
    if char is not None and (48 <= char <= 57 or char == 42):  # a sequence set
        return Key("SEQ", (parse_sequence_set(reader.sequence()),))
    name = reader.atom().decode("ascii", "replace").upper()
    if name in FLAG_KEYS:
        return Key(name)
    if name in ("BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"):
        reader.space()
        return Key(name, (reader.astring().decode("utf-8", "replace"),))
    if name in ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"):
        reader.space()
        return Key(name, (parse_date(reader),))
    if name in ("LARGER", "SMALLER"):
        reader.space()
        return Key(name, (reader.number(),))
    if name in ("KEYWORD", "UNKEYWORD"):
        reader.space()
        return Key(name, (reader.atom().decode("ascii", "replace"),))
    if name == "HEADER":
        reader.space()
        field = reader.astring().decode("ascii", "replace").lower()
        reader.space()
        return Key(name, (field, reader.astring().decode("utf-8", "replace")))
    if name == "UID":
        reader.space()
        return Key(name, (parse_sequence_set(reader.sequence()),))
    if name == "NOT":
        reader.space()
        return Key(name, (parse_key(reader, depth + 1),))
    if name == "OR":
        reader.space()
        first = parse_key(reader, depth + 1)
        reader.space()
        return Key(name, (first, parse_key(reader, depth + 1)))
    raise BadCommand(f"critere de recherche inconnu : {shown(name)}")


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time()))
    return start, start + datetime.timedelta(days=1)


def folded_key(key: Key) -> tuple[str, str] | None:
    """(FOLDED_FIELDS name, folded needle) for a text key matched on folded text, else None."""
    if key.name in FOLDED_FIELDS:
        return key.name, fold(key.args[0])
    if key.name == "HEADER" and key.args[0] in FOLDED_HEADERS and key.args[1]:
        return key.args[0].upper(), fold(key.args[1])
    return None


def folded_needles(keys) -> set[tuple[str, str]]:
    found = set()
    for key in keys:
        if key.name in ("AND", "NOT", "OR"):
            found |= folded_needles(key.args)
        elif (needle := folded_key(key)) is not None:
            found.add(needle)
    return found


def _people_text(people) -> str:
    parts = []
    for person in people or []:
        if isinstance(person, dict):
            parts.append(f"{person.get('name') or ''} <{person.get('address') or ''}>")
    return ", ".join(parts)


def folded_matches(entries, needles: set[tuple[str, str]]) -> dict[tuple[str, str], set[int]]:
    """One streamed pass over `entries` (an Entry queryset): for each (key, folded needle), the
    UIDs whose folded fields contain the needle."""
    found: dict[tuple[str, str], set[int]] = {needle: set() for needle in needles}
    if not needles:
        return found
    columns = sorted({column for name, _ in needles for column in FOLDED_FIELDS[name]})
    rows = entries.values_list("imap_uid", *(f"message__{column}" for column in columns))
    for uid, *values in rows.iterator(chunk_size=200):
        folded = {}
        for column, value in zip(columns, values, strict=True):
            folded[column] = fold(_people_text(value) if column in ("to", "cc") else value or "")
        for needle in needles:
            name, text = needle
            if any(text in folded[column] for column in FOLDED_FIELDS[name]):
                found[needle].add(uid)
    return found


class Compiler:
    """Turns the key tree into a Q over `Entry`."""

    def __init__(self, uids: list[int], raw_header_lookup, folded: dict[tuple[str, str], set[int]]):
        self.uids = uids  # the session's snapshot, ascending
        self.raw_header_lookup = raw_header_lookup  # (field, value) -> set of UIDs matching
        self.folded = folded  # (FOLDED_FIELDS name, folded needle) -> set of UIDs matching

    def compile(self, keys: list[Key]) -> Q:
        q = Q()
        for key in keys:
            q &= self.one(key)
        return q

    def one(self, key: Key) -> Q:  # noqa: C901 - one branch per search key, as RFC 3501 lists them
        name = key.name
        if name == "AND":
            return self.compile(list(key.args))
        if name == "NOT":
            return ~self.one(key.args[0])
        if name == "OR":
            return self.one(key.args[0]) | self.one(key.args[1])
        if name in FLAG_KEYS:
            spec = FLAG_KEYS[name]
            if spec is None:
                return Q()
            if spec == "none":
                return Q(pk__in=[])
            return Q(**{spec[0]: spec[1]})
        if name == "SEQ":
            largest = len(self.uids)
            numbers = sequence_members(key.args[0], list(range(1, largest + 1)), largest)
            return Q(imap_uid__in=[self.uids[n - 1] for n in numbers])
        if name == "UID":
            largest = self.uids[-1] if self.uids else 0
            return Q(imap_uid__in=sequence_members(key.args[0], self.uids, largest))
        if (needle := folded_key(key)) is not None:
            return Q(imap_uid__in=self.folded[needle])
        if name == "HEADER":
            field, value = key.args
            if field in FOLDED_HEADERS:
                return Q()  # an empty value (a non-empty one is a folded key, above)
            if field in STORED_HEADERS:
                return self._contains(STORED_HEADERS[field], value) if value else Q()
            return Q(imap_uid__in=self.raw_header_lookup(field, value))
        if name == "BCC":
            return Q(imap_uid__in=self.raw_header_lookup("bcc", key.args[0]))
        if name in ("BEFORE", "ON", "SINCE"):
            return self._dates("received_at", name, key.args[0])
        if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            return self._dates("message__date", name[4:], key.args[0])
        if name == "LARGER":
            return Q(message__size__gt=key.args[0])
        if name == "SMALLER":
            return Q(message__size__lt=key.args[0])
        if name == "KEYWORD":
            return Q(forwarded=True) if key.args[0].lower() == "$forwarded" else Q(pk__in=[])
        if name == "UNKEYWORD":
            return Q(forwarded=False) if key.args[0].lower() == "$forwarded" else Q()
        raise BadCommand(f"critere de recherche inconnu : {shown(name)}")

    @staticmethod
    def _contains(columns, value: str) -> Q:
        q = Q(pk__in=[])
        for column in columns:
            q |= Q(**{f"{column}__icontains": value})
        return q

    @staticmethod
    def _dates(column: str, which: str, day: datetime.date) -> Q:
        start, end = _day_bounds(day)
        if which == "BEFORE":
            return Q(**{f"{column}__lt": start})
        if which == "ON":
            return Q(**{f"{column}__gte": start, f"{column}__lt": end})
        return Q(**{f"{column}__gte": start})


def run(folder_id: int, keys: list[Key], uids: list[int], read_header) -> list[int]:
    """The UIDs of the snapshot matching `keys`, ascending. `read_header(entry)` gives the raw
    header block of an entry's message (for header fields the store does not keep)."""
    from mailboxes.models import Entry

    base = Entry.objects.filter(folder_id=folder_id, imap_uid__isnull=False)
    if uids:
        base = base.filter(imap_uid__lte=uids[-1])
    else:
        return []

    def raw_header_lookup(field: str, value: str) -> set[int]:
        wanted = value.lower()
        found = set()
        for entry in base.select_related("message").only("imap_uid", "message__raw"):
            block = read_header(entry.message)
            for name, raw_value in parse_headers(block[: header_end(block, 0, len(block))]):
                if name == field and wanted in raw_value.decode("utf-8", "replace").lower():
                    found.add(entry.imap_uid)
                    break
        return found

    folded = folded_matches(base, folded_needles(keys))
    query = Compiler(uids, raw_header_lookup, folded).compile(keys)
    known = set(uids)
    matched = base.filter(query).values_list("imap_uid", flat=True)
    return sorted(uid for uid in matched if uid in known)
