"""FETCH (RFC 3501 §6.4.5, §7.4.2): the items a client asks for, read from the command, and each
message's answer rendered from the session's snapshot (UID, FLAGS), the store's row (size,
internal date) and the stored bytes (ENVELOPE, BODYSTRUCTURE, sections).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from django.utils import timezone

from clients.imap import mime
from clients.imap.backend import SEEN, flag_names
from clients.imap.protocol import BadCommand, Reader, literal, shown

MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
SIMPLE = {
    "UID",
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "BODY",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
}
NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")


@dataclass
class Item:
    name: str  # UID, FLAGS, ..., BODY (section), BODY.PEEK (section)
    section: mime.Section | None = None
    partial: tuple[int, int] | None = None

    @property
    def needs_raw(self) -> bool:
        return self.name not in ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE")

    @property
    def sets_seen(self) -> bool:
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.name == "BODY" and self.section is not None

    @property
    def reads_text(self) -> bool:
        """Whether the item gives the message's content (a read, for the audit trail)."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        if self.section is None:
            return False
        return self.section.text not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME")


@dataclass
class Request:
    items: list[Item] = field(default_factory=list)

    @property
    def needs_raw(self) -> bool:
        return any(i.needs_raw for i in self.items)

    @property
    def sets_seen(self) -> bool:
        return any(i.sets_seen for i in self.items)

    @property
    def reads_text(self) -> bool:
        return any(i.reads_text for i in self.items)


def parse_request(reader: Reader, uid: bool) -> Request:
    request = Request()
    if reader.maybe(b"("):
        while True:
            request.items.append(parse_item(reader))
            if reader.maybe(b")"):
                break
            reader.space()
    else:
        start = reader.pos
        name = _name(reader)
        if name in MACROS:
            request.items = [Item(n) for n in MACROS[name]]
        else:
            reader.pos = start
            request.items.append(parse_item(reader))
    if uid and not any(i.name == "UID" for i in request.items):
        request.items.insert(0, Item("UID"))
    return request


def _name(reader: Reader) -> str:
    start = reader.pos
    while reader.peek() is not None and reader.peek() in NAME_CHARS:
        reader.pos += 1
    if reader.pos == start:
        raise BadCommand("element de FETCH attendu")
    return reader.data[start : reader.pos].decode("ascii").upper()


def parse_item(reader: Reader) -> Item:
    name = _name(reader)
    if name in ("BODY", "BODY.PEEK") and reader.peek() == 91:  # '['
        reader.pos += 1
        section = parse_section(reader)
        reader.expect(b"]")
        partial = None
        if reader.maybe(b"<"):
            start = reader.number()
            reader.expect(b".")
            length = reader.number()
            reader.expect(b">")
            if length == 0:
                raise BadCommand("une lecture partielle <debut.longueur> demande au moins un octet")
            partial = (start, length)
        return Item("BODY" if name == "BODY" else "BODY.PEEK", section, partial)
    if name not in SIMPLE:
        raise BadCommand(f"element de FETCH inconnu : {shown(name)}")
    return Item(name)


def parse_section(reader: Reader) -> mime.Section:
    if reader.peek() == 93:
        return mime.Section()
    start = reader.pos
    while reader.peek() is not None and reader.peek() in NAME_CHARS:
        reader.pos += 1
    spec = reader.data[start : reader.pos].decode("ascii").upper()
    parts = spec.split(".") if spec else []
    path = []
    while parts and parts[0].isdigit():
        number = int(parts.pop(0))
        if number == 0:
            raise BadCommand("les numeros de partie commencent a 1")
        path.append(number)
    text = ".".join(parts)
    if text not in ("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
        raise BadCommand(f"section inconnue : {shown(text)}")
    if text == "MIME" and not path:
        raise BadCommand("MIME demande un numero de partie")
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        reader.space()
        fields = tuple(f.decode("ascii", "replace").upper() for f in reader.paren_list(reader.astring))
    return mime.Section(tuple(path), text, fields)


def internaldate(value) -> bytes:
    local = timezone.localtime(value)
    return b'"' + local.strftime("%d-%b-%Y %H:%M:%S %z").encode("ascii") + b'"'


class ParsedCache:
    """The last few messages' bytes and structure (a client often asks BODYSTRUCTURE, then
    sections of the same message)."""

    def __init__(self, size: int = 8, max_bytes: int = 8 * 1024 * 1024):
        self.items: OrderedDict[int, tuple[bytes, mime.Part | None]] = OrderedDict()
        self.size = size
        self.max_bytes = max_bytes

    def get(self, message_id: int):
        item = self.items.get(message_id)
        if item is not None:
            self.items.move_to_end(message_id)
        return item

    def put(self, message_id: int, raw: bytes, part: mime.Part | None) -> None:
        if len(raw) > self.max_bytes:
            return
        self.items[message_id] = (raw, part)
        self.items.move_to_end(message_id)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


def render(seq: int, uid: int, flags: int, meta, raw: bytes | None, request: Request, cache: ParsedCache) -> bytes:
    """One `* n FETCH (...)` response."""
    out = []
    root = None

    def structure():
        nonlocal root
        if root is None:
            cached = cache.get(meta.message_id)
            if cached is not None and cached[1] is not None:
                root = cached[1]
            else:
                root = mime.parse(raw)
                cache.put(meta.message_id, raw, root)
        return root

    for item in request.items:
        name = item.name
        if name == "UID":
            out.append(b"UID %d" % uid)
        elif name == "FLAGS":
            out.append(b"FLAGS (" + " ".join(flag_names(flags)).encode("ascii") + b")")
        elif name == "INTERNALDATE":
            out.append(b"INTERNALDATE " + internaldate(meta.internaldate))
        elif name == "RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % meta.size)
        elif name == "ENVELOPE":
            out.append(b"ENVELOPE " + mime.envelope(_header_part(raw, root)))
        elif name == "BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + mime.body_structure(raw, structure(), True))
        elif name == "BODY" and item.section is None:
            out.append(b"BODY " + mime.body_structure(raw, structure(), False))
        elif name == "RFC822":
            out.append(b"RFC822 " + literal(raw))
        elif name == "RFC822.HEADER":
            out.append(b"RFC822.HEADER " + literal(raw[: mime.header_end(raw, 0, len(raw))]))
        elif name == "RFC822.TEXT":
            out.append(b"RFC822.TEXT " + literal(raw[mime.header_end(raw, 0, len(raw)) :]))
        else:
            out.append(_section(raw, item, structure))
    return b"* %d FETCH (" % seq + b" ".join(out) + b")\r\n"


def _header_part(raw: bytes, root):
    if root is not None:
        return root
    end = mime.header_end(raw, 0, len(raw))
    return mime.Part(start=0, body_start=end, end=len(raw), headers=mime.parse_headers(raw[:end]))


def _section(raw: bytes, item: Item, structure) -> bytes:
    section = item.section
    if not section.path and section.text in ("", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        end = mime.header_end(raw, 0, len(raw))
        root = mime.Part(start=0, body_start=end, end=len(raw), headers=[])
        data = mime.section_bytes(raw, root, section)
    else:
        data = mime.section_bytes(raw, structure(), section)
    label = b"BODY[" + section.label() + b"]"
    if data is None:
        data = b""
    if item.partial is not None:
        start, length = item.partial
        data = data[start : start + length]
        label += b"<%d>" % start
    return label + b" " + literal(data)


def wants_seen(request: Request, flags: int, readonly: bool) -> bool:
    return request.sets_seen and not readonly and not flags & SEEN
