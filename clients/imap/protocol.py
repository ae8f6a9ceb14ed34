"""IMAP4rev1 syntax (RFC 3501 §9): reading a command's arguments, writing responses, mailbox
names in modified UTF-7 (§5.1.3) and sequence sets.

A command arrives as bytes with its literals inline (`{n}\\r\\n` followed by n bytes): the
connection (server.py) gathers them, then `Reader` walks them.
"""

from __future__ import annotations

import base64
import re


class BadCommand(Exception):
    """A syntax error: answered `BAD` with a short French reason in ASCII (IMAP response text
    is 7-bit here, as the NO texts), after the command's name once it is known
    (`BAD FETCH : element de FETCH inconnu : FOO`)."""

    def __init__(self, text: str, command: str = ""):
        super().__init__(text)
        self.text = text
        self.command = command

    def reply(self) -> str:
        return f"{self.command} : {self.text}" if self.command else self.text


def shown(value: bytes | str, limit: int = 40) -> str:
    """What the client sent, quoted in a BAD text: printable ASCII, cut at `limit` characters."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


EXPECTED = {b" ": "espace attendue", b"}\r\n": 'fin de ligne attendue apres "}" du litteral'}


def shown_byte(byte: int) -> str:
    return f'"{chr(byte)}"' if 32 < byte < 127 else "une espace" if byte == 32 else f"l'octet 0x{byte:02x}"


ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0, 32)) | {127}
# LIST patterns may hold the wildcards; sequence sets and flags are atoms too.
LIST_CHARS_EXTRA = frozenset(b"%*")


class Reader:
    """A cursor over one command line (literals inline)."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def expect(self, char: bytes) -> None:
        if self.data[self.pos : self.pos + len(char)] != char:
            if self.at_end() and char == b" ":
                raise BadCommand("argument manquant")
            raise BadCommand(EXPECTED.get(char) or f'"{char.decode()}" attendu')
        self.pos += len(char)

    def space(self) -> None:
        self.expect(b" ")

    def maybe(self, char: bytes) -> bool:
        if self.data[self.pos : self.pos + len(char)] == char:
            self.pos += len(char)
            return True
        return False

    def end(self) -> None:
        if not self.at_end():
            raise BadCommand("caracteres en trop en fin de commande")

    def atom(self, extra: frozenset = frozenset()) -> bytes:
        """An atom; `extra` are otherwise special characters allowed here (`]` in an astring,
        the wildcards in a LIST pattern)."""
        start = self.pos
        data = self.data
        while self.pos < len(data) and (data[self.pos] not in ATOM_SPECIALS or data[self.pos] in extra):
            self.pos += 1
        if self.pos == start:
            if self.at_end():
                raise BadCommand("argument manquant")
            raise BadCommand(f"argument attendu, pas {shown_byte(data[self.pos])}")
        return data[start : self.pos]

    def sequence(self) -> bytes:
        """A sequence set (`1:5,7,9:*`)."""
        return self.atom(frozenset(b"*"))

    def number(self) -> int:
        start = self.pos
        while self.pos < len(self.data) and 48 <= self.data[self.pos] <= 57:
            self.pos += 1
        if self.pos == start:
            raise BadCommand("nombre attendu")
        return int(self.data[start : self.pos])

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise BadCommand("chaine entre guillemets non terminee")
            char = data[self.pos]
            self.pos += 1
            if char == 34:  # '"'
                return bytes(out)
            if char == 92:  # backslash
                if self.pos >= len(data):
                    raise BadCommand("chaine entre guillemets non terminee")
                char = data[self.pos]
                self.pos += 1
            elif char in (10, 13):
                raise BadCommand("saut de ligne dans une chaine entre guillemets")
            out.append(char)

    def literal(self) -> bytes:
        self.expect(b"{")
        size = self.number()
        self.maybe(b"+")
        self.expect(b"}\r\n")
        if self.pos + size > len(self.data):
            raise BadCommand("litteral plus court qu'annonce")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def string(self) -> bytes:
        char = self.peek()
        if char == 34:
            return self.quoted()
        if char == 123:
            return self.literal()
        raise BadCommand("chaine attendue (entre guillemets ou litteral)")

    def astring(self, extra: frozenset = frozenset()) -> bytes:
        char = self.peek()
        if char in (34, 123):
            return self.string()
        return self.atom(extra | {93})

    def mailbox(self) -> str:
        name = self.astring()
        return decode_mailbox(name)

    def list_mailbox(self) -> str:
        char = self.peek()
        if char in (34, 123):
            name = self.string()
        else:
            name = self.atom(LIST_CHARS_EXTRA | {93})
        return decode_mailbox(name)

    def paren_list(self, item) -> list:
        """`(item item ...)`; `item` reads one element."""
        self.expect(b"(")
        items = []
        if self.maybe(b")"):
            return items
        while True:
            items.append(item())
            if self.maybe(b")"):
                return items
            self.space()

    def flag(self) -> str:
        if self.maybe(b"\\"):
            if self.maybe(b"*"):
                return "\\*"
            return "\\" + self.atom().decode("ascii", "replace")
        return self.atom().decode("ascii", "replace")


# --- responses ---------------------------------------------------------------------------------


def quote(value: str | bytes) -> bytes:
    """A quoted string, or a literal when the value cannot be quoted (8-bit, line breaks)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) < 1000 and all(32 <= b < 127 for b in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def nstring(value: str | bytes | None) -> bytes:
    if value is None:
        return b"NIL"
    return quote(value)


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def astring_out(value: str) -> bytes:
    data = value.encode("ascii")
    if data and all(b not in ATOM_SPECIALS and b != 91 for b in data):
        return data
    return quote(data)


# --- sequence sets -----------------------------------------------------------------------------

SEQUENCE_RE = re.compile(rb"^(\d+|\*)(?::(\d+|\*))?$")


def parse_sequence_set(text: bytes) -> list[tuple[int | None, int | None]]:
    """`1:3,5,7:*` → [(1, 3), (5, 5), (7, None)]; `*` is None (the largest)."""
    ranges = []
    for part in text.split(b","):
        match = SEQUENCE_RE.match(part)
        if not match:
            raise BadCommand(f"ensemble de messages invalide : {shown(text)}")
        first = None if match.group(1) == b"*" else int(match.group(1))
        second = first if match.group(2) is None else (None if match.group(2) == b"*" else int(match.group(2)))
        if first == 0 or second == 0:
            raise BadCommand("0 n'est pas un numero de message")
        ranges.append((first, second))
    return ranges


def sequence_members(ranges, values: list[int], largest: int) -> set[int]:
    """The members of `values` (sorted ascending) that fall in `ranges`, `*` being `largest`."""
    import bisect

    out: set[int] = set()
    for first, second in ranges:
        low = largest if first is None else first
        high = largest if second is None else second
        if low > high:
            low, high = high, low
        start = bisect.bisect_left(values, low)
        end = bisect.bisect_right(values, high)
        out.update(values[start:end])
    return out


def format_sequence_set(values) -> bytes:
    """[1, 2, 3, 7] → b"1:3,7" (for COPYUID / APPENDUID)."""
    values = sorted(values)
    parts = []
    start = prev = None
    for value in values:
        if start is None:
            start = prev = value
        elif value == prev + 1:
            prev = value
        else:
            parts.append(f"{start}:{prev}" if start != prev else f"{start}")
            start = prev = value
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else f"{start}")
    return ",".join(parts).encode("ascii")


# --- modified UTF-7 (RFC 3501 §5.1.3) -------------------------------------------------------------


def encode_mailbox(name: str) -> bytes:
    out = bytearray()
    pending: list[str] = []

    def flush():
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(data).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for char in name:
        code = ord(char)
        if 0x20 <= code <= 0x7E:
            flush()
            out.extend(b"&-" if char == "&" else char.encode("ascii"))
        else:
            pending.append(char)
    flush()
    return bytes(out)


def decode_mailbox(data: bytes) -> str:
    out = []
    pos = 0
    while pos < len(data):
        char = data[pos : pos + 1]
        if char != b"&":
            out.append(char.decode("latin-1"))
            pos += 1
            continue
        end = data.find(b"-", pos)
        if end == -1:
            raise BadCommand(f"nom de dossier invalide (UTF-7 modifie) : {shown(data)}")
        chunk = data[pos + 1 : end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
            try:
                out.append(base64.b64decode(padded).decode("utf-16-be"))
            except ValueError:
                raise BadCommand(f"nom de dossier invalide (UTF-7 modifie) : {shown(data)}") from None
        pos = end + 1
    text = "".join(out)
    if any(ord(c) > 0x7F for c in data.decode("latin-1")):
        # An 8-bit name (not modified UTF-7): read it as UTF-8, as Dovecot does.
        text = data.decode("utf-8", "replace")
    return text
