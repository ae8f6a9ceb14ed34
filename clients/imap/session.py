"""One IMAP4rev1 session (RFC 3501) and its commands, with IDLE (2177), NAMESPACE (2342),
UIDPLUS (4315), UNSELECT (3691), MOVE (6851), SPECIAL-USE (6154), ID (2971), CHILDREN (3348),
SASL-IR (4959), QUOTA (9208, read-only: each box is a quota root named by its address, with
the one resource STORAGE; RFC 2087 clients read the same responses).

The session keeps the selected folder's view (UIDs in order, flags) and tells the client what
changed (EXPUNGE, EXISTS, FETCH FLAGS) only where RFC 3501 §7.4.1 allows: never an EXPUNGE
while answering FETCH, STORE or SEARCH by sequence number. Everything the store holds is read
and written by `backend` in the server's thread pool.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import datetime
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from clients import auth, sasl
from clients.imap import backend, fetch
from clients.imap import search as imap_search
from clients.imap.protocol import (
    BadCommand,
    Reader,
    astring_out,
    encode_mailbox,
    format_sequence_set,
    parse_sequence_set,
    sequence_members,
    shown,
)
from mailboxes.smtp_gateway import ascii_text

log = logging.getLogger("clients.imap")

FLAGS_LINE = b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
PERMANENT = b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)] Drapeaux permanents\r\n"
FETCH_WINDOW = 500  # message rows loaded at once when a client walks a folder
FETCH_CHUNK_BYTES = 2 * 1024 * 1024
INLINE_READ_BYTES = 256 * 1024


ANSWERED = "answered"  # a command that wrote its own tagged reply (STARTTLS)


class SessionEnded(Exception):
    """The session's access was withdrawn: the server says `* BYE <text>` and closes."""


class Respond(Exception):
    """Ends a command with a tagged NO or BAD."""

    def __init__(self, status: str, text: str, code: str = ""):
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


def no(text: str, code: str = "") -> Respond:
    return Respond("NO", text, code)


@dataclass
class Selected:
    folder: backend.FolderInfo
    readonly: bool
    uid_validity: int
    uid_next: int
    uids: list[int]
    flags: dict[int, int]
    meta: dict[int, backend.Meta] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    _seq: dict[int, int] | None = None

    def seq_of(self) -> dict[int, int]:
        """UID → message number, kept until the UIDs change (`changed_uids`)."""
        if self._seq is None:
            self._seq = {uid: index + 1 for index, uid in enumerate(self.uids)}
        return self._seq

    def changed_uids(self) -> None:
        self._seq = None


class Session:
    def __init__(self, connection):
        self.conn = connection
        self.state = "not_authenticated"
        self.login: auth.Login | None = None
        self.account: backend.Account | None = None
        self.selected: Selected | None = None
        self.reads: list[tuple[backend.Meta, bool]] = []
        self.cache = fetch.ParsedCache()
        self.checked_at = float("-inf")  # when check_access last looked (time.monotonic)

    # --- plumbing -------------------------------------------------------------------------

    async def run(self, fn, *args):
        return await self.conn.server.run(fn, *args)

    def write(self, data: bytes) -> None:
        self.conn.write(data)

    def capabilities(self) -> bytes:
        caps = [
            "IMAP4rev1",
            "SASL-IR",
            "ID",
            "IDLE",
            "NAMESPACE",
            "UIDPLUS",
            "MOVE",
            "SPECIAL-USE",
            "UNSELECT",
            "CHILDREN",
            "QUOTA",
            "QUOTA=RES-STORAGE",
        ]
        if self.state == "not_authenticated":
            if self.conn.tls_available and not self.conn.is_tls:
                caps.append("STARTTLS")
            if self.conn.plaintext_refused:
                caps.append("LOGINDISABLED")
            else:
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
                if self.conn.server.psc_enabled:
                    caps += ["AUTH=OAUTHBEARER", "AUTH=XOAUTH2"]
        return " ".join(caps).encode("ascii")

    async def before_wait(self) -> None:
        """Before waiting for the client: write the reads of the commands just answered."""
        if self.reads:
            reads, self.reads = self.reads, []
            user = self.login.user
            seen = [m for m, s in reads if s]
            peeked = [m for m, s in reads if not s]
            if seen:
                await self.run(backend.record_reads, user, seen, True, self.conn.ip)
            if peeked:
                await self.run(backend.record_reads, user, peeked, False, self.conn.ip)

    async def check_access(self) -> None:
        """Before a command the client sent after a pause: end the session (`SessionEnded`, a
        BYE) when its login would no longer be accepted or the selected folder's box is no
        longer the account's; a box lost elsewhere just leaves the session's list. At most one
        look every CLIENTS_ACCESS_CHECK_SECONDS (0: at each such command)."""
        if self.login is None:
            return
        now = time.monotonic()
        if now - self.checked_at < settings.CLIENTS_ACCESS_CHECK_SECONDS:
            return
        standing = await self.run(auth.session_standing, self.login, self.account.box_ids)
        self.checked_at = now
        reason = standing.reason
        lost_box = None
        if not reason and self.selected is not None and self.selected.folder.mailbox_id not in standing.boxes:
            reason, lost_box = "mailbox_lost", self.selected.folder.mailbox_id
        elif not reason and not standing.boxes:
            reason = "mailbox_lost"  # none of the boxes it showed: a new login shows the account's others
        if reason:
            text = await self.run(auth.end_session, self.login, reason, self.conn.ip, lost_box)
            raise SessionEnded(ascii_text(text))
        if len(standing.boxes) < len(self.account.boxes):
            self.account = backend.Account(self.account.user, [b for b in self.account.boxes if b.id in standing.boxes])

    async def close(self) -> None:
        try:
            await self.before_wait()
        finally:
            self.conn.server.unwatch(self)

    # --- dispatch ---------------------------------------------------------------------------

    async def handle(self, tag: bytes, name: str, reader: Reader) -> None:
        uid = False
        if name == "UID":
            try:
                reader.space()
                name = reader.atom().decode("ascii", "replace").upper()
            except BadCommand as exc:
                raise BadCommand(exc.text, "UID") from None
            uid = True
            if name not in ("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"):
                raise BadCommand(f"commande UID inconnue : {shown(name)}")
        handler = COMMANDS.get(name)
        if handler is None:
            raise BadCommand(f"commande inconnue : {shown(name)}")
        states, method = handler
        if self.state not in states:
            raise Respond("BAD", f"{name} : {state_refusal(self.state, states)}")
        try:
            if method in UID_AWARE:
                text = await getattr(self, method)(tag, reader, uid)
            else:
                text = await getattr(self, method)(tag, reader)
        except BadCommand as exc:
            exc.command = exc.command or (f"UID {name}" if uid else name)
            raise
        if text is not ANSWERED:
            self.write(tag + b" OK " + (text or f"{name} termine").encode("ascii") + b"\r\n")

    # --- any state --------------------------------------------------------------------------

    async def cmd_capability(self, tag, reader):
        reader.end()
        self.write(b"* CAPABILITY " + self.capabilities() + b"\r\n")

    async def cmd_noop(self, tag, reader):
        reader.end()
        if self.selected is not None:
            await self.refresh(expunges=True)

    async def cmd_logout(self, tag, reader):
        reader.end()
        self.write(b"* BYE Deconnexion\r\n")
        self.state = "logout"

    async def cmd_id(self, tag, reader):
        reader.space()
        if not reader.maybe(b"NIL"):
            reader.paren_list(reader.astring)
        reader.end()
        self.write(b'* ID ("name" "MSSante IMAP" "vendor" "MSSante")\r\n')

    # --- not authenticated --------------------------------------------------------------------

    async def cmd_starttls(self, tag, reader):
        reader.end()
        if not self.conn.tls_available or self.conn.is_tls:
            raise Respond("BAD", "STARTTLS indisponible")
        self.write(tag + b" OK Debut de la negociation TLS\r\n")
        await self.conn.start_tls()
        return ANSWERED

    async def cmd_login(self, tag, reader):
        reader.space()
        login = reader.astring().decode("utf-8", "replace")
        reader.space()
        secret = reader.astring().decode("utf-8", "replace")
        reader.end()
        if self.conn.plaintext_refused:
            raise no("Connexion en clair refusee : utilisez STARTTLS", "PRIVACYREQUIRED")
        await self.authenticate(sasl.Credentials("", login, secret))
        return "Connecte"

    async def cmd_authenticate(self, tag, reader):
        reader.space()
        mechanism = reader.atom().decode("ascii", "replace").upper()
        initial = None
        if reader.maybe(b" "):
            initial = reader.atom()
        reader.end()
        if self.conn.plaintext_refused:
            raise no("Connexion en clair refusee : utilisez STARTTLS", "PRIVACYREQUIRED")
        credentials = await self.sasl_exchange(mechanism, initial)
        await self.authenticate(credentials)
        return "Connecte"

    async def sasl_exchange(self, mechanism: str, initial: bytes | None) -> sasl.Credentials:
        def first():
            if initial is None:
                return None
            return b"" if initial == b"=" else sasl.b64decode(initial)

        try:
            if mechanism == "PLAIN":
                message = first()
                if message is None:
                    message = await self.challenge(b"")
                return sasl.plain(message)
            if mechanism == "LOGIN":
                login = first()
                if login is None:
                    login = await self.challenge(b"Username:")
                secret = await self.challenge(b"Password:")
                return sasl.login(login, secret)
            if mechanism in ("OAUTHBEARER", "XOAUTH2") and self.conn.server.psc_enabled:
                message = first()
                if message is None:
                    message = await self.challenge(b"")
                return sasl.oauthbearer(message) if mechanism == "OAUTHBEARER" else sasl.xoauth2(message)
        except sasl.SaslError:
            raise Respond("BAD", "Message d'authentification invalide") from None
        raise no("Mecanisme d'authentification non pris en charge", "CANNOT")

    async def challenge(self, text: bytes) -> bytes:
        self.write(b"+ " + base64.b64encode(text) + b"\r\n")
        line = await self.conn.read_line()
        if line is None:
            raise ConnectionError("closed during authentication")
        line = line.strip()
        if line == b"*":
            raise Respond("BAD", "Authentification annulee")
        return sasl.b64decode(line)

    async def authenticate(self, credentials: sasl.Credentials) -> None:
        ip = self.conn.ip
        try:
            if credentials.bearer:
                login = await self.run(
                    lambda: auth.check_token_login(
                        credentials.secret, login=credentials.login, protocol="imap", ip=ip, authzid=credentials.authzid
                    )
                )
            else:
                login = await self.run(
                    lambda: auth.check_password_login(
                        credentials.login, credentials.secret, protocol="imap", ip=ip, authzid=credentials.authzid
                    )
                )
        except auth.LoginRefused as exc:
            await asyncio.sleep(settings.CLIENTS_AUTH_FAILURE_PAUSE)
            if credentials.bearer:
                # RFC 7628 §3.2.2: the error as a challenge, then the failure.
                self.write(b"+ " + base64.b64encode(sasl.oauth_error()) + b"\r\n")
                await self.conn.read_line()
            raise no(ascii_text(exc.text), exc.imap_code) from None
        self.login = login
        self.account = await self.run(backend.open_account, login.user, login.primary)
        self.state = "authenticated"
        self.write(b"* CAPABILITY " + self.capabilities() + b"\r\n")

    # --- authenticated ------------------------------------------------------------------------

    async def folder(self, name: str) -> backend.FolderInfo:
        folder = await self.run(backend.find_folder, self.account, name)
        if folder is None:
            raise no("Ce dossier n'existe pas", "NONEXISTENT")
        return folder

    async def cmd_select(self, tag, reader, readonly=False):
        reader.space()
        name = reader.mailbox()
        reader.end()
        self.conn.server.unwatch(self)
        self.selected = None
        self.state = "authenticated"
        folder = await self.folder(name)
        snap = await self.run(backend.snapshot, folder.id)
        self.selected = Selected(folder, readonly, snap.uid_validity, snap.uid_next, snap.uids, snap.flags)
        self.state = "selected"
        self.conn.server.watch(self, folder.id)
        unseen = next((i + 1 for i, u in enumerate(snap.uids) if not snap.flags[u] & backend.SEEN), None)
        self.write(FLAGS_LINE)
        self.write(b"* %d EXISTS\r\n* 0 RECENT\r\n" % len(snap.uids))
        if unseen:
            self.write(b"* OK [UNSEEN %d] Premier message non lu\r\n" % unseen)
        self.write(b"* OK [UIDVALIDITY %d] UID valides\r\n" % snap.uid_validity)
        self.write(b"* OK [UIDNEXT %d] Prochain UID\r\n" % snap.uid_next)
        self.write(PERMANENT if not readonly else b"* OK [PERMANENTFLAGS ()] Lecture seule\r\n")
        return "[READ-ONLY] Dossier ouvert" if readonly else "[READ-WRITE] Dossier ouvert"

    async def cmd_examine(self, tag, reader):
        return await self.cmd_select(tag, reader, readonly=True)

    async def cmd_create(self, tag, reader):
        reader.space()
        name = reader.mailbox()
        reader.end()
        await self.run(self._guard(backend.create_folder), self.account, name)

    async def cmd_delete(self, tag, reader):
        reader.space()
        folder = await self.folder(reader.mailbox())
        reader.end()
        if self.selected is not None and self.selected.folder.id == folder.id:
            raise no("Fermez d'abord ce dossier", "INUSE")
        await self.run(self._guard(backend.delete_folder), self.account, folder)

    async def cmd_rename(self, tag, reader):
        reader.space()
        folder = await self.folder(reader.mailbox())
        reader.space()
        new_name = reader.mailbox()
        reader.end()
        await self.run(self._guard(backend.rename_folder), self.account, folder, new_name)

    async def cmd_subscribe(self, tag, reader):
        reader.space()
        await self.folder(reader.mailbox())
        reader.end()

    async def cmd_unsubscribe(self, tag, reader):
        reader.space()
        reader.mailbox()
        reader.end()

    async def cmd_list(self, tag, reader, lsub=False):
        reader.space()
        special_only = False
        if reader.maybe(b"("):  # LIST-EXTENDED selection options (RFC 5258): SPECIAL-USE only
            options = []
            while not reader.maybe(b")"):
                options.append(reader.atom().upper())
                reader.maybe(b" ")
            special_only = b"SPECIAL-USE" in options
            reader.space()
        reference = reader.mailbox()
        reader.space()
        pattern = reader.list_mailbox()
        if reader.maybe(b" RETURN "):
            reader.paren_list(reader.atom)
        reader.end()
        word = b"LSUB" if lsub else b"LIST"
        if not pattern:
            self.write(b'* %s (\\Noselect) "/" ""\r\n' % word)
            return None
        self.account = await self.run(backend.with_new_boxes, self.account)
        folders = await self.run(backend.list_folders, self.account)
        for name, attributes in list_entries(folders, reference + pattern, special_only):
            self.write(b'* %s (%s) "/" %s\r\n' % (word, " ".join(attributes).encode("ascii"), mailbox_out(name)))
        return None

    async def cmd_lsub(self, tag, reader):
        return await self.cmd_list(tag, reader, lsub=True)

    async def cmd_namespace(self, tag, reader):
        reader.end()
        shared = any(b.prefix for b in self.account.boxes)
        others = b'(("' + encode_mailbox(settings.IMAP_SHARED_PREFIX + "/") + b'" "/"))' if shared else b"NIL"
        personal = b'(("" "/"))' if any(not b.prefix for b in self.account.boxes) else b"NIL"
        self.write(b"* NAMESPACE " + personal + b" NIL " + others + b"\r\n")

    async def cmd_status(self, tag, reader):
        reader.space()
        name = reader.mailbox()
        reader.space()
        items = [i.upper().decode("ascii", "replace") for i in reader.paren_list(reader.atom)]
        reader.end()
        if not set(items) <= backend.STATUS_ITEMS:
            unknown = ", ".join(i for i in items if i not in backend.STATUS_ITEMS)
            raise BadCommand(f"element de STATUS inconnu : {shown(unknown)}")
        folder = await self.folder(name)
        values = await self.run(backend.status, folder.id, frozenset(items))
        body = " ".join(f"{i} {values[i]}" for i in items).encode("ascii")
        self.write(b"* STATUS " + mailbox_out(folder.name) + b" (" + body + b")\r\n")

    # --- QUOTA (RFC 9208) ---------------------------------------------------------------------

    def write_quota(self, root: backend.QuotaRoot) -> None:
        resources = b"STORAGE %d %d" % root.storage if root.storage else b""
        self.write(b"* QUOTA " + astring_out(root.name) + b" (" + resources + b")\r\n")

    async def cmd_getquotaroot(self, tag, reader):
        reader.space()
        name = reader.mailbox()
        reader.end()
        folder = await self.folder(name)
        box = next(b for b in self.account.boxes if b.id == folder.mailbox_id)
        root = await self.run(backend.quota_root, box)
        self.write(b"* QUOTAROOT " + mailbox_out(folder.name) + b" " + astring_out(root.name) + b"\r\n")
        self.write_quota(root)

    async def cmd_getquota(self, tag, reader):
        reader.space()
        name = reader.astring().decode("utf-8", "replace")
        reader.end()
        box = backend.find_quota_root(self.account, name)
        if box is None:
            raise no("Cette racine de quota n'existe pas", "NONEXISTENT")
        self.write_quota(await self.run(backend.quota_root, box))

    async def cmd_setquota(self, tag, reader):
        reader.space()
        reader.astring()
        reader.space()
        reader.paren_list(reader.atom)
        reader.end()
        raise no("Le quota d'une boite est fixe par son administrateur, pas par un client IMAP", "NOPERM")

    async def cmd_append(self, tag, reader):
        reader.space()
        name = reader.mailbox()
        reader.space()
        bits = 0
        if reader.peek() == 40:  # '('
            bits = flag_bits(reader.paren_list(reader.flag))
            reader.space()
        internaldate = None
        if reader.peek() == 34:  # '"'
            internaldate = parse_datetime(reader.quoted())
            reader.space()
        data = reader.literal()
        reader.end()
        folder = await self.folder(name)
        if not data:
            raise no("Message vide")
        validity, uid = await self.run(self._guard(backend.append), self.login.user, folder, data, bits, internaldate)
        if self.selected is not None and self.selected.folder.id == folder.id:
            await self.refresh(expunges=True)
        return f"[APPENDUID {validity} {uid}] Message depose"

    async def cmd_idle(self, tag, reader):
        reader.end()
        self.write(b"+ En attente\r\n")
        await self.conn.flush()
        reading = asyncio.ensure_future(self.conn.read_line())
        try:
            while True:
                waits = {reading}
                changed = None
                if self.selected is not None:
                    changed = asyncio.ensure_future(self.selected.changed.wait())
                    waits.add(changed)
                done, _pending = await asyncio.wait(
                    waits, timeout=self.conn.server.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if changed is not None and not changed.done():
                    changed.cancel()
                if reading in done:
                    line = reading.result()
                    if line is None:
                        raise ConnectionError("closed while idling")
                    if line.strip().upper() != b"DONE":
                        raise Respond("BAD", "DONE attendu")
                    return "IDLE termine"
                if self.selected is not None:
                    await self.refresh(expunges=True)
                    await self.conn.flush()
                await self.check_access()
        finally:
            if not reading.done():
                reading.cancel()

    # --- selected ----------------------------------------------------------------------------

    async def refresh(self, expunges: bool) -> None:
        """Tell the client what changed in the selected folder since it last looked."""
        sel = self.selected
        sel.changed.clear()
        snap = await self.run(backend.snapshot, sel.folder.id)
        if snap.uid_validity != sel.uid_validity:
            raise ConnectionAbortedError("folder gone")
        present = set(snap.uids)
        if expunges:
            gone = [index for index, uid in enumerate(sel.uids) if uid not in present]
            for index in reversed(gone):
                self.write(b"* %d EXPUNGE\r\n" % (index + 1))
                uid = sel.uids[index]
                sel.flags.pop(uid, None)
                sel.meta.pop(uid, None)
            if gone:
                sel.uids = [u for u in sel.uids if u in present]
                sel.changed_uids()
        for index, uid in enumerate(sel.uids):
            new = snap.flags.get(uid)
            if new is not None and new != sel.flags[uid]:
                sel.flags[uid] = new
                self.write(b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (index + 1, uid, flags_out(new)))
        highest = sel.uids[-1] if sel.uids else 0
        added = [u for u in snap.uids if u > highest]
        if added:
            sel.uids.extend(added)
            sel.changed_uids()
            for uid in added:
                sel.flags[uid] = snap.flags[uid]
            self.write(b"* %d EXISTS\r\n" % len(sel.uids))
        sel.uid_next = snap.uid_next

    async def maybe_refresh(self, uid: bool) -> None:
        if self.selected is not None and self.selected.changed.is_set():
            await self.refresh(expunges=uid)

    def resolve(self, text: bytes, uid: bool) -> list[int]:
        """A sequence set (by number or by UID) → the UIDs it names, ascending."""
        sel = self.selected
        ranges = parse_sequence_set(text)
        if uid:
            largest = sel.uids[-1] if sel.uids else 0
            found = sequence_members(ranges, sel.uids, largest)
            return sorted(found)
        count = len(sel.uids)
        numbers: set[int] = set()
        for first, second in ranges:
            low, high = (count if first is None else first), (count if second is None else second)
            if max(low, high) > count:
                raise BadCommand(f"numero de message au-dela du dernier ({count})")
            numbers.update(range(min(low, high), max(low, high) + 1))
        return sorted(sel.uids[n - 1] for n in numbers)

    async def cmd_check(self, tag, reader):
        reader.end()
        await self.refresh(expunges=True)

    async def cmd_close(self, tag, reader):
        reader.end()
        sel = self.selected
        if not sel.readonly:
            await self.run(backend.expunge, self.login.user, sel.folder.id)
        self._unselect()

    async def cmd_unselect(self, tag, reader):
        reader.end()
        self._unselect()

    def _unselect(self):
        self.conn.server.unwatch(self)
        self.selected = None
        self.state = "authenticated"

    async def cmd_expunge(self, tag, reader, uid=False):
        uids = None
        if uid:
            reader.space()
            uids = self.resolve(reader.sequence(), True)
        reader.end()
        self._writable()
        gone = await self.run(backend.expunge, self.login.user, self.selected.folder.id, uids)
        self.announce_expunged(gone)
        await self.refresh(expunges=True)

    def announce_expunged(self, gone: list[int]) -> None:
        sel = self.selected
        gone_set = set(gone)
        for index in reversed(range(len(sel.uids))):
            uid = sel.uids[index]
            if uid in gone_set:
                self.write(b"* %d EXPUNGE\r\n" % (index + 1))
                sel.flags.pop(uid, None)
                sel.meta.pop(uid, None)
        sel.uids = [u for u in sel.uids if u not in gone_set]
        sel.changed_uids()

    def _writable(self):
        if self.selected.readonly:
            raise no("Dossier ouvert en lecture seule", "READ-ONLY")

    async def cmd_search(self, tag, reader, uid=False):
        await self.maybe_refresh(uid)
        reader.space()
        if reader.data[reader.pos : reader.pos + 8].upper() == b"CHARSET ":
            reader.pos += 8
            charset = reader.astring().upper()
            if charset not in (b"UTF-8", b"US-ASCII"):
                raise no("Jeu de caracteres non pris en charge", "BADCHARSET (UTF-8 US-ASCII)")
            reader.space()
        keys = imap_search.parse_keys(reader)
        reader.end()
        sel = self.selected
        found = await self.run(imap_search.run, sel.folder.id, keys, list(sel.uids), self._read_header)
        if uid:
            numbers = found
        else:
            seq = sel.seq_of()
            numbers = sorted(seq[u] for u in found if u in seq)
        self.write(b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + b"\r\n")

    @staticmethod
    def _read_header(message) -> bytes:
        from mailboxes.store import open_raw

        with open_raw(message) as handle:
            return handle.read(65536)

    async def cmd_fetch(self, tag, reader, uid=False):
        await self.maybe_refresh(uid)
        reader.space()
        uids = self.resolve(reader.sequence(), uid)
        reader.space()
        request = fetch.parse_request(reader, uid)
        reader.end()
        if not uids:
            return None
        sel = self.selected
        missing = [u for u in uids if u not in sel.meta]
        if missing and any(i.name not in ("UID", "FLAGS") for i in request.items):
            await self.load_meta(missing)
        mark_seen = request.sets_seen and not sel.readonly
        if mark_seen:
            unseen = [u for u in uids if not sel.flags.get(u, 0) & backend.SEEN]
            if unseen:
                new = await self.run(backend.store_flags, sel.folder.id, unseen, "+", backend.SEEN)
                sel.flags.update(new)
                if not any(i.name == "FLAGS" for i in request.items):  # RFC 3501 §6.4.5: say \Seen changed
                    request.items.append(fetch.Item("FLAGS"))
        await self.fetch_all(uids, request)
        if request.reads_text:
            self.reads += [(sel.meta[u], mark_seen) for u in uids if u in sel.meta]
            if len(self.reads) >= 500:
                await self.before_wait()

    async def load_meta(self, missing: list[int]) -> None:
        sel = self.selected
        wanted = set(missing)
        if len(missing) < FETCH_WINDOW:  # a client walking the folder: read ahead
            start = bisect.bisect_right(sel.uids, missing[-1])
            ahead = [u for u in sel.uids[start : start + FETCH_WINDOW] if u not in sel.meta]
            wanted.update(ahead)
        sel.meta.update(await self.run(backend.load_meta, sel.folder.id, sorted(wanted)))

    async def fetch_all(self, uids: list[int], request: fetch.Request) -> None:
        sel = self.selected
        seq = sel.seq_of()
        batch: list[int] = []
        size = 0
        for uid in uids:
            if uid not in seq:
                continue
            meta = sel.meta.get(uid)
            if request.needs_raw and meta is None:
                continue  # deleted meanwhile: nothing to send
            batch.append(uid)
            size += meta.size if (meta and request.needs_raw) else 64
            if size >= FETCH_CHUNK_BYTES or len(batch) >= 1000:
                await self._fetch_batch(batch, seq, request)
                batch, size = [], 0
        if batch:
            await self._fetch_batch(batch, seq, request)

    async def _fetch_batch(self, uids, seq, request) -> None:
        sel = self.selected
        if (
            request.needs_raw
            and self.conn.server.local_files
            and sum(sel.meta[u].size for u in uids) <= INLINE_READ_BYTES
        ):
            # Local files, a few KB: reading them here costs less than a trip to the thread pool
            # (mbsync asks for each message by its own command).
            out = self._render_with_raw(uids, seq, sel.flags, sel.meta, request)
        elif request.needs_raw:
            out = await self.run(self._render_with_raw, uids, seq, dict(sel.flags), sel.meta, request)
        else:
            out = b"".join(
                fetch.render(seq[u], u, sel.flags.get(u, 0), sel.meta.get(u), None, request, self.cache) for u in uids
            )
        self.write(out)
        await self.conn.flush()

    def _render_with_raw(self, uids, seq, flags, metas, request) -> bytes:
        parts = []
        for uid in uids:
            meta = metas[uid]
            cached = self.cache.get(meta.message_id)
            try:
                raw = cached[0] if cached else backend.read_message(meta)
            except OSError:
                log.warning("imap fetch: raw message missing: message=%s", meta.message_id)
                continue
            parts.append(fetch.render(seq[uid], uid, flags.get(uid, 0), meta, raw, request, self.cache))
        return b"".join(parts)

    async def cmd_store(self, tag, reader, uid=False):
        await self.maybe_refresh(uid)
        reader.space()
        uids = self.resolve(reader.sequence(), uid)
        reader.space()
        action = reader.atom().decode("ascii", "replace").upper()
        silent = action.endswith(".SILENT")
        action = action.removesuffix(".SILENT")
        if action not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise BadCommand("FLAGS, +FLAGS ou -FLAGS attendu")
        reader.space()
        if reader.peek() == 40:
            flags = reader.paren_list(reader.flag)
        else:
            flags = [reader.flag()]
            while reader.maybe(b" "):
                flags.append(reader.flag())
        reader.end()
        self._writable()
        sel = self.selected
        mode = {"FLAGS": "=", "+FLAGS": "+", "-FLAGS": "-"}[action]
        new = await self.run(backend.store_flags, sel.folder.id, uids, mode, flag_bits(flags))
        seq = sel.seq_of()
        for u in uids:
            if u in new:
                sel.flags[u] = new[u]
                if not silent:
                    uid_part = b"UID %d " % u if uid else b""
                    self.write(b"* %d FETCH (%sFLAGS (%s))\r\n" % (seq[u], uid_part, flags_out(new[u])))

    async def cmd_copy(self, tag, reader, uid=False, move=False):
        await self.maybe_refresh(uid)
        reader.space()
        uids = self.resolve(reader.sequence(), uid)
        reader.space()
        name = reader.mailbox()
        reader.end()
        target = await self.folder(name)
        if move:
            self._writable()
        action = backend.move if move else backend.copy
        pairs = await self.run(self._guard(action), self.login.user, self.selected.folder.id, uids, target)
        code = ""
        if pairs:
            source = format_sequence_set([p[0] for p in pairs]).decode()
            dest = ",".join(str(p[1]) for p in pairs)
            code = f"[COPYUID {target.id} {source} {dest}] "
        if move:
            if code:
                self.write(b"* OK " + code.encode("ascii") + b"Messages deplaces\r\n")
            self.announce_expunged([p[0] for p in pairs])
            return "MOVE termine"
        return code + "COPY termine"

    async def cmd_move(self, tag, reader, uid=False):
        return await self.cmd_copy(tag, reader, uid=uid, move=True)

    @staticmethod
    def _guard(fn):
        """Run `fn`, turning a refusal of the rules into a NO."""

        def guarded(*args):
            try:
                return fn(*args)
            except backend.Refused as exc:
                raise no(ascii_text(exc.text), exc.code) from None

        return guarded


# --- helpers -------------------------------------------------------------------------------------


def state_refusal(state: str, states: tuple[str, ...]) -> str:
    """Why a known command is refused in the session's state (BAD, RFC 3501 §6)."""
    if state == "not_authenticated":
        return "connectez-vous d'abord (LOGIN ou AUTHENTICATE)"
    if states == NOT_AUTH:
        return "session deja authentifiee"
    return "ouvrez d'abord un dossier (SELECT ou EXAMINE)"


def flags_out(bits: int) -> bytes:
    return " ".join(backend.flag_names(bits)).encode("ascii")


def flag_bits(flags: list[str]) -> int:
    bits = 0
    for flag in flags:
        bits |= backend.FLAG_BITS.get(flag.lower(), 0)
    return bits


def mailbox_out(name: str) -> bytes:
    encoded = encode_mailbox(name)
    return astring_out(encoded.decode("ascii")) if encoded != b"INBOX" else b"INBOX"


def parse_datetime(text: bytes):
    try:
        return datetime.datetime.strptime(text.decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        raise BadCommand(f'date invalide : {shown(text)} (attendue : "01-Dec-2026 10:00:00 +0100")') from None


def list_entries(folders: list[backend.FolderInfo], pattern: str, special_only: bool):
    """(name, attributes) of the folders (and their \\Noselect parents) matching a LIST pattern."""
    import re

    regex = re.compile(
        "^" + "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern) + "$",
        re.IGNORECASE if pattern.upper().startswith("INBOX") else 0,
    )
    names = {f.name: f for f in folders}
    parents: dict[str, None] = {}
    for name in names:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parents.setdefault("/".join(parts[:depth]), None)
    out = []
    for name in list(names) + [p for p in parents if p not in names]:
        if not regex.match(name) and not (name == "INBOX" and regex.match("inbox".upper())):
            continue
        folder = names.get(name)
        if special_only and (folder is None or not folder.special_use):
            continue
        has_children = any(other.startswith(name + "/") for other in names)
        attributes = ["\\HasChildren" if has_children else "\\HasNoChildren"]
        if folder is None:
            attributes.insert(0, "\\Noselect")
        elif folder.special_use:
            attributes.append(folder.special_use)
        out.append((name, attributes))
    return out


NOT_AUTH = ("not_authenticated",)
AUTHED = ("authenticated", "selected")
SELECTED = ("selected",)
ANY = ("not_authenticated", "authenticated", "selected")
COMMANDS = {
    "CAPABILITY": (ANY, "cmd_capability"),
    "NOOP": (ANY, "cmd_noop"),
    "LOGOUT": (ANY, "cmd_logout"),
    "ID": (ANY, "cmd_id"),
    "STARTTLS": (NOT_AUTH, "cmd_starttls"),
    "LOGIN": (NOT_AUTH, "cmd_login"),
    "AUTHENTICATE": (NOT_AUTH, "cmd_authenticate"),
    "SELECT": (AUTHED, "cmd_select"),
    "EXAMINE": (AUTHED, "cmd_examine"),
    "CREATE": (AUTHED, "cmd_create"),
    "DELETE": (AUTHED, "cmd_delete"),
    "RENAME": (AUTHED, "cmd_rename"),
    "SUBSCRIBE": (AUTHED, "cmd_subscribe"),
    "UNSUBSCRIBE": (AUTHED, "cmd_unsubscribe"),
    "LIST": (AUTHED, "cmd_list"),
    "LSUB": (AUTHED, "cmd_lsub"),
    "NAMESPACE": (AUTHED, "cmd_namespace"),
    "STATUS": (AUTHED, "cmd_status"),
    "GETQUOTAROOT": (AUTHED, "cmd_getquotaroot"),
    "GETQUOTA": (AUTHED, "cmd_getquota"),
    "SETQUOTA": (AUTHED, "cmd_setquota"),
    "APPEND": (AUTHED, "cmd_append"),
    "IDLE": (AUTHED, "cmd_idle"),
    "CHECK": (SELECTED, "cmd_check"),
    "CLOSE": (SELECTED, "cmd_close"),
    "UNSELECT": (SELECTED, "cmd_unselect"),
    "EXPUNGE": (SELECTED, "cmd_expunge"),
    "SEARCH": (SELECTED, "cmd_search"),
    "FETCH": (SELECTED, "cmd_fetch"),
    "STORE": (SELECTED, "cmd_store"),
    "COPY": (SELECTED, "cmd_copy"),
    "MOVE": (SELECTED, "cmd_move"),
}
UID_AWARE = {"cmd_expunge", "cmd_search", "cmd_fetch", "cmd_store", "cmd_copy", "cmd_move"}
