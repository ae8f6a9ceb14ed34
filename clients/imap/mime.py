"""The MIME structure of a stored message, read from its raw bytes (RFC 2045–2046), for the
FETCH items that describe or cut a message: ENVELOPE, BODYSTRUCTURE, BODY[section]<partial>.

Sections are byte ranges of the stored message (RFC 3501 §6.4.5): what a client gets is always
the stored bytes, never a re-serialisation. Header values go out as they are in the message
(encoded words included), so the client decodes them as it would from any server.
"""

from __future__ import annotations

import email.message
import email.utils
import functools
from dataclasses import dataclass, field

from clients.imap.protocol import nstring, quote


@dataclass
class Part:
    start: int  # first byte of the part's header
    body_start: int  # first byte of its body (after the blank line)
    end: int  # one past its last byte
    headers: list[tuple[str, bytes]]  # (lower-case name, unfolded raw value)
    maintype: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the enclosed message of a message/rfc822 part

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


MAX_DEPTH = 20


def header_end(raw: bytes, start: int, end: int) -> int:
    """Where the body starts: after the first empty line, or `end` if there is none."""
    if raw.startswith(b"\r\n", start):
        return start + 2
    if raw.startswith(b"\n", start):
        return start + 1
    crlf = raw.find(b"\r\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end)
    candidates = [i + 4 for i in (crlf,) if i != -1] + [i + 2 for i in (lf,) if i != -1]
    return min(candidates) if candidates else end


def parse_headers(block: bytes) -> list[tuple[str, bytes]]:
    headers: list[tuple[str, bytes]] = []
    name = None
    value = b""
    for line in block.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and name is not None:
            value += b" " + line.strip()
            continue
        if name is not None:
            headers.append((name, value))
        key, sep, rest = line.partition(b":")
        if not sep:
            name = None
            continue
        name = key.strip().decode("ascii", "replace").lower()
        value = rest.strip()
    if name is not None:
        headers.append((name, value))
    return headers


def content_type(value: bytes | None, default: str) -> tuple[str, str, list[tuple[str, str]]]:
    if not value:
        maintype, subtype = default.split("/")
        return maintype, subtype, ([("charset", "us-ascii")] if maintype == "text" else [])
    holder = email.message.Message()
    holder["Content-Type"] = value.decode("utf-8", "replace")
    full = holder.get_content_type()
    maintype, _, subtype = full.partition("/")
    params = []
    for key, param in (holder.get_params() or [])[1:]:
        params.append((key.lower(), email.utils.collapse_rfc2231_value(param)))
    return maintype, subtype, params


def parse(raw: bytes, start: int = 0, end: int | None = None, default: str = "text/plain", depth: int = 0) -> Part:
    end = len(raw) if end is None else end
    body_start = header_end(raw, start, end)
    part = Part(start=start, body_start=body_start, end=end, headers=parse_headers(raw[start:body_start]))
    part.maintype, part.subtype, part.params = content_type(part.header("content-type"), default)
    if depth >= MAX_DEPTH:
        return part
    if part.maintype == "multipart":
        boundary = dict(part.params).get("boundary")
        child_default = "message/rfc822" if part.subtype == "digest" else "text/plain"
        for child_start, child_end in split_multipart(raw, body_start, end, boundary):
            part.children.append(parse(raw, child_start, child_end, child_default, depth + 1))
        if not part.children:  # a broken multipart reads as one text part
            part.maintype, part.subtype, part.params = "text", "plain", []
    elif part.maintype == "message" and part.subtype == "rfc822":
        part.message = parse(raw, body_start, end, "text/plain", depth + 1)
    return part


def split_multipart(raw: bytes, start: int, end: int, boundary: str | None) -> list[tuple[int, int]]:
    """The (start, end) of each body part between the delimiter lines (RFC 2046 §5.1.1). The line
    break before a delimiter belongs to the delimiter."""
    if not boundary:
        return []
    delimiter = b"--" + boundary.encode("ascii", "replace")
    spans = []
    current = None
    pos = start
    while pos < end:
        found = raw.find(delimiter, pos, end)
        if found == -1:
            break
        at_line_start = found == start or raw[found - 1 : found] == b"\n"
        after = found + len(delimiter)
        if not at_line_start:
            pos = after
            continue
        closing = raw[after : after + 2] == b"--"
        line_end = raw.find(b"\n", after, end)
        next_start = end if line_end == -1 else line_end + 1
        if current is not None:
            part_end = found
            if raw[part_end - 1 : part_end] == b"\n":
                part_end -= 1
                if raw[part_end - 1 : part_end] == b"\r":
                    part_end -= 1
            spans.append((current, max(current, part_end)))
        if closing:
            current = None
            break
        current = next_start
        pos = next_start
    if current is not None and current < end:
        spans.append((current, end))
    return spans


# --- ENVELOPE (RFC 3501 §7.4.2) ------------------------------------------------------------------


def _addresses(value: bytes | None) -> bytes:
    if not value:
        return b"NIL"
    return _address_list(value)


@functools.lru_cache(maxsize=4096)
def _address_list(value: bytes) -> bytes:
    """An address header as an ENVELOPE list. Kept per header value: a box's correspondents come
    back again and again, and From also stands for Sender and Reply-To (the `email` package's
    address parser is most of an ENVELOPE's cost)."""
    text = value.decode("utf-8", "surrogateescape")
    items = []
    for name, address in email.utils.getaddresses([text]):
        if not address and not name:
            continue
        local, _, host = address.rpartition("@") if "@" in address else (address, "", "")
        items.append(
            b"("
            + b" ".join(
                [
                    _raw(name) if name else b"NIL",
                    b"NIL",
                    _raw(local) if local else b"NIL",
                    _raw(host) if host else b"NIL",
                ]
            )
            + b")"
        )
    return b"(" + b"".join(items) + b")" if items else b"NIL"


def _raw(text: str) -> bytes:
    return quote(text.encode("utf-8", "surrogateescape"))


def envelope(part: Part) -> bytes:
    sender = part.header("from")
    fields = [
        nstring(part.header("date")),
        nstring(part.header("subject")),
        _addresses(sender),
        _addresses(part.header("sender") or sender),
        _addresses(part.header("reply-to") or sender),
        _addresses(part.header("to")),
        _addresses(part.header("cc")),
        _addresses(part.header("bcc")),
        nstring(part.header("in-reply-to")),
        nstring(part.header("message-id")),
    ]
    return b"(" + b" ".join(fields) + b")"


# --- BODYSTRUCTURE (RFC 3501 §7.4.2) -------------------------------------------------------------


def _params(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(quote(k) + b" " + quote(v) for k, v in params) + b")"


def _disposition(part: Part) -> bytes:
    value = part.header("content-disposition")
    if not value:
        return b"NIL"
    holder = email.message.Message()
    holder["Content-Disposition"] = value.decode("utf-8", "replace")
    params = holder.get_params(header="content-disposition") or []
    if not params:
        return b"NIL"
    kind = params[0][0]
    rest = [(k.lower(), email.utils.collapse_rfc2231_value(v)) for k, v in params[1:]]
    return b"(" + quote(kind) + b" " + _params(rest) + b")"


def _extension(part: Part) -> bytes:
    language = part.header("content-language")
    return b" ".join([_disposition(part), nstring(language), nstring(part.header("content-location"))])


def body_structure(raw: bytes, part: Part, extensible: bool = True) -> bytes:
    if part.children:
        inner = b"".join(body_structure(raw, child, extensible) for child in part.children)
        out = inner + b" " + quote(part.subtype)
        if extensible:
            out += b" " + _params(part.params) + b" " + _extension(part)
        return b"(" + out + b")"
    size = part.end - part.body_start
    encoding = part.header("content-transfer-encoding")
    fields = [
        quote(part.maintype),
        quote(part.subtype),
        _params(part.params),
        nstring(part.header("content-id")),
        nstring(part.header("content-description")),
        quote(encoding.decode("ascii", "replace").strip() if encoding else "7bit"),
        str(size).encode(),
    ]
    lines = raw.count(b"\n", part.body_start, part.end)
    if size and not raw[part.end - 1 : part.end] == b"\n":
        lines += 1
    if part.message is not None:
        fields += [envelope(part.message), body_structure(raw, part.message, extensible), str(lines).encode()]
    elif part.maintype == "text":
        fields.append(str(lines).encode())
    if extensible:
        fields += [nstring(part.header("content-md5")), _extension(part)]
    return b"(" + b" ".join(fields) + b")"


# --- sections (RFC 3501 §6.4.5) --------------------------------------------------------------------


@dataclass
class Section:
    path: tuple[int, ...] = ()
    text: str = ""  # "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"
    fields: tuple[str, ...] = ()

    def label(self) -> bytes:
        out = ".".join(str(n) for n in self.path)
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
        if self.fields:
            out += " (" + " ".join(self.fields) + ")"
        return out.encode("ascii")


def part_at(root: Part, path: tuple[int, ...]) -> Part | None:
    part = root
    for index, number in enumerate(path):
        if index and part.message is not None:
            part = part.message
        if part.children:
            if number > len(part.children):
                return None
            part = part.children[number - 1]
        elif number != 1:
            return None
    return part


def section_bytes(raw: bytes, root: Part, section: Section) -> bytes | None:
    part = part_at(root, section.path)
    if part is None:
        return None
    if section.text == "MIME":
        return raw[part.start : part.body_start] if section.path else None
    if section.path and section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
        if part.message is None:
            return None
        part = part.message
    if section.text == "":
        return raw[part.start : part.end] if not section.path else raw[part.body_start : part.end]
    if section.text == "TEXT":
        return raw[part.body_start : part.end]
    header = raw[part.start : part.body_start]
    if section.text == "HEADER":
        return header
    return filter_header(header, section.fields, keep=section.text == "HEADER.FIELDS")


def filter_header(header: bytes, names: tuple[str, ...], keep: bool) -> bytes:
    wanted = {n.lower() for n in names}
    out = bytearray()
    include = False
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if include:
                out += line
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        include = (name in wanted) == keep
        if include:
            out += line
    out += b"\r\n"
    return bytes(out)
