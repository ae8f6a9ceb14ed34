"""Parsing a raw RFC 5322 / MIME message into the fields the store keeps (RULES.md §3, DESIGN.md
"One message store"): Message-ID / In-Reply-To / References for threading, the addresses with
their display names, text and sanitised HTML bodies, the MDN request, the `X-MSS-*` headers and
the attachments at any MIME depth (RFC 2231 and encoded-word file names).

The MIME tree is walked on the raw bytes themselves (a `memoryview`, boundaries found with
`bytes.find`): only the small header blocks go through the `email` package, and a leaf is
decoded once, when it is read. A 25 MB message is therefore never held as a second full copy
(as `email.parser` would, as a str and again as a list of lines).

Malformed input never raises: bad charsets fall back to a replacement decoding, broken base64
to a lenient decoding, a missing closing boundary ends the part at the end of the message,
excessive nesting turns the deepest entity into an opaque attachment. `MalformedMessage` is
raised only when the bytes cannot be a message at all (empty, or no header field).
"""

from __future__ import annotations

import binascii
import datetime
import email.utils
import re
from dataclasses import dataclass, field
from email import errors as email_errors
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from email.parser import BytesHeaderParser
from email.policy import Compat32

import nh3

from mailboxes.display_text import display_name, visible_text

MAX_DEPTH = 32
MAX_PARTS = 500
MSGID_RE = re.compile(r"<[^<>\s]{1,990}>")
CONTENT_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
# What the e-mail package notes of a header line it cannot read as a field: a line without a
# colon (the block ends there for it) or a `From ` line after the first (the first becomes the
# Unix From line, `get_unixfrom`).
UNREADABLE_HEADER_DEFECTS = (email_errors.MissingHeaderBodySeparatorDefect, email_errors.MisplacedEnvelopeHeaderDefect)


class _Utf8Headers(Compat32):
    """compat32 reads 8-bit header bytes as surrogates and shows them as U+FFFD. RFC 6532
    allows raw UTF-8 in header fields: when the bytes are valid UTF-8, read them as such."""

    def header_fetch_parse(self, name, value):
        if isinstance(value, str) and not value.isascii():
            try:
                return value.encode("ascii", "surrogateescape").decode("utf-8")
            except UnicodeError:
                pass
        return super().header_fetch_parse(name, value)


_header_parser = BytesHeaderParser(policy=_Utf8Headers())

# nh3's defaults already drop <script>, event handlers and javascript: URLs; `cid:` lets inline
# images refer to their part. Remote images stay in the markup: the webmail blocks them.
_HTML_SCHEMES = set(nh3.ALLOWED_URL_SCHEMES) | {"cid"}


class MalformedMessage(Exception):
    """The bytes cannot be read as a message at all."""


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str = ""
    is_inline: bool = False


@dataclass
class ParsedMessage:
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    from_address: str = ""
    from_name: str = ""
    from_count: int = 0  # the readable addresses of every From field (RFC 5322: one, or a Sender)
    reply_to: str = ""  # the first address of Reply-To, lower case
    reply_to_name: str = ""  # its display name (`"Secrétariat cardio" <…>`), decoded, "" when none
    to: list[dict] = field(default_factory=list)
    cc: list[dict] = field(default_factory=list)
    subject: str = ""
    date: datetime.datetime | None = None
    text_body: str = ""
    html_body: str = ""
    mdn_requested_to: str = ""
    x_mss_headers: dict = field(default_factory=dict)
    auto_submitted: bool = False
    # How many `Received:` fields the top header block holds: the hops it has made (RFC 5321
    # §6.3; the delivery path's hop limit, `senders.check_hops`).
    received_count: int = 0
    # The top header block holds a line that is not a `Name: value` field (no colon, a space or
    # a tab before the colon, a Unix `From ` line): the parse stops reading fields there, while
    # another reader (an IMAP client) may read what follows, a `From :` among them
    # (`senders.check_header_block` refuses such a message).
    unreadable_header_line: bool = False
    is_report: bool = False
    report_type: str = ""
    attachments: list[ParsedAttachment] = field(default_factory=list)
    # Fields of the machine-readable part of a report (message/disposition-notification or
    # message/delivery-status), lower-cased names: "original-message-id", "final-recipient"...
    report_fields: dict = field(default_factory=dict)
    # The same part as field blocks (a DSN has one block per message, then one per recipient).
    report_blocks: list[dict] = field(default_factory=list)
    # Message-ID of the message a report returns (its text/rfc822-headers or message/rfc822
    # part): a non-delivery report without In-Reply-To still belongs to that message's thread.
    reported_message_id: str = ""


# --- header helpers ---------------------------------------------------------------------------


def decode_text(value) -> str:
    """A header value with its encoded words decoded; never raises."""
    if value is None:
        return ""
    value = str(value)
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except Exception:  # noqa: S110 - a broken encoded word keeps the raw text
            pass
    # Surrogates come from undecodable 8-bit bytes in headers; unfold and strip them.
    value = value.encode("utf-8", "replace").decode("utf-8", "replace")
    # Bidirectional controls never reach a page (mailboxes/display_text.py).
    return " ".join(visible_text(value).replace("\x00", "").split())


def parse_address_list(values) -> list[dict]:
    """`[{"address": "a@b.fr", "name": "Dr A"}]` from header values; unparsable items are dropped."""
    result = []
    try:
        pairs = email.utils.getaddresses([str(v) for v in values if v is not None])
    except Exception:
        return result
    for name, address in pairs:
        address = address.strip()
        # Only plain printable ASCII addresses are kept (no NUL, no undecodable 8-bit byte).
        if "@" not in address or not address.isascii() or not address.isprintable() or " " in address:
            continue
        local, _, domain = address.rpartition("@")
        if not local or not domain:
            continue
        # A name that looks like an address would hide the real one: not kept (display_text.py).
        result.append({"address": f"{local}@{domain.lower()}", "name": display_name(decode_text(name))})
    return result


def first_msgid(value) -> str:
    ids = MSGID_RE.findall(decode_text(value)) if value else []
    return ids[0] if ids else ""


def parse_date(value) -> datetime.datetime | None:
    if not value:
        return None
    try:
        date = email.utils.parsedate_to_datetime(str(value))
    except Exception:
        return None
    if date is None:
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.UTC)
    if not 1970 <= date.year <= 9000:
        return None
    return date


# --- the MIME walk ----------------------------------------------------------------------------


@dataclass
class _Leaf:
    headers: EmailMessage
    body: memoryview
    content_type: str


def _split_headers(buf: memoryview, start: int, end: int, data: bytes) -> tuple[EmailMessage, int]:
    """Parse the header block of the entity in data[start:end]; return headers and body start."""
    if data.startswith(b"\r\n", start) or data.startswith(b"\n", start):
        # No header at all: the body starts right after the empty line (default text/plain).
        skip = 2 if data.startswith(b"\r\n", start) else 1
        return _header_parser.parsebytes(b""), min(start + skip, end)
    match = HEADER_END_RE.search(data, start, end)
    header_end = match.start() if match else end
    body_start = match.end() if match else end
    headers = _header_parser.parsebytes(bytes(buf[start:header_end]))
    return headers, body_start


def _content_type(headers: EmailMessage) -> str:
    try:
        ctype = headers.get_content_type()
    except Exception:
        return "text/plain"
    return ctype if CONTENT_TYPE_RE.match(ctype) else "application/octet-stream"


def _param(headers: EmailMessage, name: str, header: str = "content-type") -> str:
    try:
        value = headers.get_param(name, header=header)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, tuple):
        try:
            value = email.utils.collapse_rfc2231_value(value)
        except Exception:
            value = value[2] if len(value) > 2 else ""
    return str(value)


def _split_multipart(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The (start, end) byte ranges of the body parts between the delimiters of `boundary`."""
    delimiter = b"--" + boundary
    parts: list[tuple[int, int]] = []
    pos = start
    part_start = None
    while pos < end:
        found = data.find(delimiter, pos, end)
        if found < 0:
            break
        at_line_start = found == start or data[found - 1 : found] == b"\n"
        if not at_line_start:
            pos = found + len(delimiter)
            continue
        line_end = data.find(b"\n", found, end)
        line_end = end if line_end < 0 else line_end + 1
        after = data[found + len(delimiter) : found + len(delimiter) + 2]
        if part_start is not None:
            # The line break before the delimiter belongs to the delimiter (RFC 2046 §5.1.1).
            part_end = found - 1
            if part_end > part_start and data[part_end - 1 : part_end] == b"\r":
                part_end -= 1
            parts.append((part_start, max(part_start, part_end)))
            if len(parts) >= MAX_PARTS:
                return parts
        if after == b"--":
            return parts
        part_start = line_end
        pos = line_end
    if part_start is not None and part_start < end:
        parts.append((part_start, end))  # no closing delimiter: the part runs to the end
    return parts


def _walk(data: bytes, buf: memoryview, start: int, end: int, depth: int, out: list, counter: list[int]) -> None:
    counter[0] += 1
    headers, body_start = _split_headers(buf, start, end, data)
    ctype = _content_type(headers)
    if counter[0] > MAX_PARTS:
        return
    if ctype.startswith("multipart/") and depth < MAX_DEPTH:
        boundary = _param(headers, "boundary")
        try:
            boundary_bytes = boundary.encode("ascii")
        except UnicodeEncodeError:
            boundary_bytes = b""
        if boundary_bytes:
            ranges = _split_multipart(data, body_start, end, boundary_bytes)
            out.append(("container", headers, ctype))
            for part_start, part_end in ranges:
                _walk(data, buf, part_start, part_end, depth + 1, out, counter)
            return
        ctype = "text/plain"  # a multipart without boundary reads as text
    if depth >= MAX_DEPTH and ctype.startswith("multipart/"):
        ctype = "application/octet-stream"
    out.append(("leaf", _Leaf(headers, buf[body_start:end], ctype), ctype))


def _decode_body(leaf: _Leaf) -> bytes:
    cte = str(leaf.headers.get("content-transfer-encoding", "")).strip().lower()
    body = leaf.body
    if cte == "base64":
        try:
            return binascii.a2b_base64(body)
        except (binascii.Error, ValueError):
            # Broken base64: keep the alphabet and decode the longest well-formed prefix.
            cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", bytes(body))
            cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
            try:
                return binascii.a2b_base64(cleaned)
            except (binascii.Error, ValueError):
                return b""
    if cte == "quoted-printable":
        try:
            return binascii.a2b_qp(bytes(body))
        except (binascii.Error, ValueError):
            return bytes(body)
    return bytes(body)


def _decode_charset(data: bytes, charset: str) -> str:
    charset = (charset or "utf-8").strip().strip('"').lower() or "utf-8"
    if charset in ("us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        charset = "utf-8"
    try:
        text = data.decode(charset, "replace")
    except (LookupError, ValueError, TypeError):
        text = data.decode("utf-8", "replace")
    return text.replace("\x00", "").replace("\r\n", "\n")


def _filename(headers: EmailMessage) -> str:
    name = ""
    try:
        name = headers.get_filename() or ""
    except Exception:
        name = ""
    if not name:
        name = _param(headers, "name")
    name = decode_text(name)
    # Only the last path component, without control characters.
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(c for c in name if c.isprintable()).strip().strip(".")
    return name[:200]


def _disposition(headers: EmailMessage) -> str:
    value = str(headers.get("content-disposition", "") or "")
    return value.split(";", 1)[0].strip().lower()


def _header_fields(block: bytes) -> dict:
    """`Name: value` lines of a report's machine-readable part, name lower-cased (first wins)."""
    fields: dict[str, str] = {}
    text = block.decode("utf-8", "replace").replace("\x00", "").replace("\r\n", "\n")
    current = None
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and current:
            fields[current] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep and name.strip() and " " not in name.strip():
            current = name.strip().lower()
            fields.setdefault(current, value.strip())
    return fields


def sanitise_html(html: str) -> str:
    try:
        return nh3.clean(html, url_schemes=_HTML_SCHEMES)
    except Exception:
        return ""


# --- entry point ------------------------------------------------------------------------------


def _read_top_headers(parsed: ParsedMessage, top) -> None:
    """The top entity's header fields a message keeps: threading, addresses, subject, date, the
    MDN request, every X-MSS-* field (repeats joined) and Auto-Submitted."""
    parsed.message_id = first_msgid(top.get("message-id"))
    parsed.in_reply_to = first_msgid(top.get("in-reply-to"))
    references = MSGID_RE.findall(decode_text(top.get("references", "")))
    parsed.references = list(dict.fromkeys(references))[-50:]
    sender = parse_address_list(top.get_all("from") or [])
    parsed.from_count = len(sender)
    if sender:
        parsed.from_address, parsed.from_name = sender[0]["address"], sender[0]["name"]
    reply_to = parse_address_list(top.get_all("reply-to") or [])
    parsed.reply_to = reply_to[0]["address"].lower() if reply_to else ""
    parsed.reply_to_name = reply_to[0]["name"] if reply_to else ""
    parsed.to = parse_address_list(top.get_all("to") or [])
    parsed.cc = parse_address_list(top.get_all("cc") or [])
    parsed.subject = decode_text(top.get("subject", ""))
    parsed.date = parse_date(top.get("date"))
    mdn = parse_address_list(top.get_all("disposition-notification-to") or [])
    parsed.mdn_requested_to = mdn[0]["address"] if mdn else ""
    for name, value in top.items():
        lowered = name.lower()
        if lowered == "received":
            parsed.received_count += 1
        elif lowered.startswith("x-mss-"):
            decoded = decode_text(value)
            key = lowered
            parsed.x_mss_headers[key] = (
                f"{parsed.x_mss_headers[key]}, {decoded}" if key in parsed.x_mss_headers else decoded
            )
    auto = decode_text(top.get("auto-submitted", "")).split(";", 1)[0].strip().lower()
    parsed.auto_submitted = bool(auto) and auto != "no"
    parsed.unreadable_header_line = top.get_unixfrom() is not None or any(
        isinstance(defect, UNREADABLE_HEADER_DEFECTS) for defect in top.defects
    )


def parse_message(raw: bytes) -> ParsedMessage:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedMessage("not bytes")
    data = bytes(raw) if not isinstance(raw, bytes) else raw
    if not data.strip():
        raise MalformedMessage("empty message")
    buf = memoryview(data)
    items: list = []
    _walk(data, buf, 0, len(data), 0, items, [0])
    if not items:
        raise MalformedMessage("no entity")
    top = items[0][1] if items[0][0] == "container" else items[0][1].headers
    if not top.keys():
        raise MalformedMessage("no header field")

    parsed = ParsedMessage()
    _read_top_headers(parsed, top)
    top_type = _content_type(top)
    if top_type == "multipart/report":
        parsed.is_report = True
        parsed.report_type = decode_text(_param(top, "report-type")).lower()[:60]

    texts: list[str] = []
    htmls: list[str] = []
    for kind, item, ctype in items:
        if kind != "leaf":
            continue
        leaf: _Leaf = item
        disposition = _disposition(leaf.headers)
        filename = _filename(leaf.headers)
        if parsed.is_report and ctype in ("message/disposition-notification", "message/delivery-status"):
            body = _decode_body(leaf)
            parsed.report_fields = _header_fields(body)
            parsed.report_blocks = [_header_fields(block) for block in re.split(rb"\r?\n[ \t]*\r?\n", body)]
            parsed.report_blocks = [block for block in parsed.report_blocks if block]
            continue
        if parsed.is_report and ctype in ("text/rfc822-headers", "message/rfc822") and not parsed.reported_message_id:
            returned = _header_parser.parsebytes(_decode_body(leaf)[:65536])
            parsed.reported_message_id = first_msgid(returned.get("message-id"))
        is_body_text = ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename
        if is_body_text:
            charset = _param(leaf.headers, "charset")
            text = _decode_charset(_decode_body(leaf), charset)
            (texts if ctype == "text/plain" else htmls).append(text)
            continue
        if ctype == "message/rfc822" and not filename:
            filename = "message.eml"
        content_id = first_msgid(leaf.headers.get("content-id")) or decode_text(leaf.headers.get("content-id", ""))
        parsed.attachments.append(
            _LazyAttachment(
                leaf,
                filename=filename or "piece-jointe",
                content_type=ctype[:255],
                content_id=content_id.strip("<>")[:255],
                is_inline=disposition == "inline" or (disposition == "" and bool(content_id)),
            )
        )
    parsed.text_body = "\n\n".join(texts) if len(texts) > 1 else (texts[0] if texts else "")
    if htmls:
        parsed.html_body = sanitise_html(htmls[0])
    return parsed


class _LazyAttachment(ParsedAttachment):
    """An attachment whose `data` is decoded from the raw bytes when it is read, so that only
    one attachment at a time is held decoded in memory."""

    def __init__(self, leaf: _Leaf, *, filename, content_type, content_id, is_inline):
        self._leaf = leaf
        self._data: bytes | None = None
        self.filename = filename
        self.content_type = content_type
        self.content_id = content_id
        self.is_inline = is_inline

    @property
    def data(self) -> bytes:  # type: ignore[override]
        if self._data is not None:
            return self._data
        return _decode_body(self._leaf)

    @data.setter
    def data(self, value: bytes) -> None:
        self._data = value

    def __repr__(self) -> str:
        return f"ParsedAttachment(filename={self.filename!r}, content_type={self.content_type!r})"
