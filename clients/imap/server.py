"""The IMAP listener (`manage.py runimapd`): connections, literals, STARTTLS and implicit TLS, and
the wake-ups of idling clients.

Each connection reads commands with their literals inline (RFC 3501 §4.3: a synchronising
literal gets its `+` continuation), hands them to its `Session`, and writes the answers. The
Django ORM is synchronous: the sessions' reads and writes run in a thread pool whose threads keep
their database connection (like the SMTP gateway).

Wake-ups: on PostgreSQL a trigger sends `NOTIFY mss_imap, '<folder id>'` whenever an entry is
added, changed or removed (mailboxes migration 0005), by the delivery path, the webmail or
another IMAP session; one LISTEN connection per server process marks the sessions that have
that folder selected, and an idling one answers within the notification's delay (measured in
bench/RESULTS.md). Elsewhere (SQLite, or while the LISTEN connection is down) idling sessions
look again every IMAP_POLL_SECONDS.

Before waiting for the network, a connection writes the audit events of what it read; after
waiting, it checks that its access still holds (`Session.check_access`, clients/auth.py
`session_standing`): a revoked app password, a changed password, a deactivated account, or the
selected folder's box taken away ends the session with `* BYE` at the next command the client
sends (RFC 9051 §7.1.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.db import connections

from clients import psc
from clients.imap.protocol import BadCommand, Reader
from clients.imap.session import Respond, Session, SessionEnded
from clients.tls import server_context
from mailboxes.smtp_gateway import ascii_text
from mssante.db import kept_connection_call

log = logging.getLogger("clients.imap")

LITERAL_RE = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")
MAX_LINE = 64 * 1024
TAG_RE = re.compile(rb"^[\x21-\x7e]+$")
LIBPQ_OPTIONS = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
}


class Connection:
    def __init__(self, server: ImapServer, reader, writer, is_tls: bool):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.is_tls = is_tls
        self.buf = bytearray()
        peer = writer.get_extra_info("peername") or ("", 0)
        self.ip = peer[0] or None
        self.session = Session(self)

    @property
    def tls_available(self) -> bool:
        return self.server.tls_context is not None

    @property
    def plaintext_refused(self) -> bool:
        return self.tls_available and not self.is_tls

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def flush(self) -> None:
        await self.writer.drain()

    async def _read_more(self) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(256 * 1024), timeout=settings.IMAP_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionError, OSError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    async def read_line(self) -> bytes | None:
        """One line (no literal), for AUTHENTICATE continuations and IDLE's DONE."""
        while True:
            end = self.buf.find(b"\n")
            if end != -1:
                line = bytes(self.buf[:end]).rstrip(b"\r")
                del self.buf[: end + 1]
                return line
            if len(self.buf) > MAX_LINE or not await self._read_more():
                return None

    async def read_command(self) -> tuple[bytes, bool] | None:
        """The next command with its literals inline, and whether we waited for the network."""
        fresh = False
        pos = 0
        while True:
            end = self.buf.find(b"\n", pos)
            if end == -1:
                if len(self.buf) - pos > MAX_LINE:
                    self.write(b"* BYE Ligne de commande trop longue\r\n")
                    return None
                await self.session.before_wait()
                await self.flush()
                if not await self._read_more():
                    return None
                fresh = True
                continue
            if end - pos > MAX_LINE:  # arrived whole in one read: as long a line as one in pieces
                self.write(b"* BYE Ligne de commande trop longue\r\n")
                return None
            line_end = end + 1
            match = LITERAL_RE.search(bytes(self.buf[max(pos, line_end - 32) : line_end]))
            if match is None:
                command = bytes(self.buf[:end]).rstrip(b"\r")
                del self.buf[:line_end]
                return command, fresh
            size, non_sync = int(match.group(1)), bool(match.group(2))
            if self.literal_refused(size, line_end):
                tag = bytes(self.buf[: max(self.buf.find(b" "), 0)]) or b"*"
                if non_sync:
                    self.write(b"* BYE " + self.too_big() + b"\r\n")
                    return None
                self.write(tag + b" NO [TOOBIG] " + self.too_big() + b"\r\n")
                del self.buf[:line_end]
                pos = 0
                continue
            if not non_sync:
                self.write(b"+ Pret\r\n")
                await self.flush()
            while len(self.buf) < line_end + size:
                if not await self._read_more():
                    return None
                fresh = True
            pos = line_end + size

    def literal_refused(self, size: int, before: int) -> bool:
        """Whether a literal of `size` bytes, announced after `before` bytes of its command, is
        refused. Before login a literal only carries a login or a password: the whole command
        stays within MAX_LINE, so that a client that never logs in cannot make the server hold
        a message-sized buffer (it answered "+ Pret" to 100 MB, and to any chain of literals)."""
        if self.session.state == "not_authenticated":
            return before + size > MAX_LINE
        return size > self.server.max_literal

    def too_big(self) -> bytes:
        if self.session.state == "not_authenticated":
            return b"Litteral trop long avant authentification"
        return b"Message trop volumineux"

    async def start_tls(self) -> None:
        await self.flush()
        self.buf.clear()  # nothing sent in clear before the handshake is kept (RFC 3501 §6.2.1)
        await self.writer.start_tls(self.server.tls_context)
        self.is_tls = True

    async def serve(self) -> None:
        session = self.session
        self.write(b"* OK [CAPABILITY " + session.capabilities() + b"] MSSante IMAP pret\r\n")
        try:
            while session.state != "logout":
                got = await self.read_command()
                if got is None:
                    break
                command, fresh = got
                if fresh and not await self.access_holds():
                    break
                if not await self.execute(command):
                    break
                await self.flush()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await session.close()
            with contextlib.suppress(Exception):
                await self.flush()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    def bye(self, text: str) -> None:
        """`* BYE <text>`: the server ends the session (RFC 9051 §7.1.5)."""
        self.write(b"* BYE " + text.encode("ascii", "replace") + b"\r\n")

    async def access_holds(self) -> bool:
        """Whether the session may answer the command just read; else it said BYE. A check that
        fails (the database unreachable) ends the session too: access unknown is access refused."""
        try:
            await self.session.check_access()
        except SessionEnded as exc:
            self.bye(str(exc))
            return False
        except Exception:
            log.exception("imap access check failed")
            self.write(b"* BYE [UNAVAILABLE] Erreur temporaire du serveur : reconnectez-vous\r\n")
            return False
        return True

    async def execute(self, command: bytes) -> bool:
        """Run one command; False when the connection must end."""
        tag, _, rest = command.partition(b" ")
        if not tag or not TAG_RE.match(tag) or tag == b"+":
            self.write(b"* BAD Commande illisible\r\n")
            return True
        reader = Reader(rest)
        try:
            name = reader.atom().decode("ascii", "replace").upper()
            await self.session.handle(tag, name, reader)
        except BadCommand as exc:
            self.write(tag + b" BAD " + ascii_text(exc.reply()).encode("ascii") + b"\r\n")
        except Respond as exc:
            code = f"[{exc.code}] " if exc.code else ""
            self.write(tag + b" " + exc.status.encode() + b" " + (code + exc.text).encode("ascii", "replace") + b"\r\n")
        except SessionEnded as exc:  # withdrawn while idling
            self.bye(str(exc))
            return False
        except ConnectionAbortedError:
            self.write(b"* BYE Session terminee : reconnectez-vous\r\n")
            return False
        except (ConnectionError, OSError):
            return False
        except Exception:
            log.exception("imap command failed: %s", command[:20].split(b" ")[1:2])
            self.write(tag + b" NO [UNAVAILABLE] Erreur temporaire du serveur\r\n")
        return True


class ImapServer:
    def __init__(self, workers: int | None = None):
        self.workers = workers or settings.IMAP_WORKERS
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="imapd-orm")
        self.tls_context = server_context()
        self.psc_enabled = psc.enabled()
        self.max_literal = settings.MAILBOX_MAX_MESSAGE_BYTES + 64 * 1024
        # Stored messages on a local disk (not object storage) may be read in the event loop.
        self.local_files = isinstance(storages["default"], FileSystemStorage)
        self.watchers: dict[int, set[Session]] = {}
        self.listening = False
        self.servers: list[asyncio.AbstractServer] = []
        self.connections: set[asyncio.Task] = set()
        self.open_connections: set[Connection] = set()
        self._listener: asyncio.Task | None = None

    @property
    def poll_seconds(self) -> float:
        return settings.IMAP_SAFETY_POLL_SECONDS if self.listening else settings.IMAP_POLL_SECONDS

    async def run(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(kept_connection_call, fn, *args))

    def watch(self, session: Session, folder_id: int) -> None:
        self.unwatch(session)
        self.watchers.setdefault(folder_id, set()).add(session)

    def unwatch(self, session: Session) -> None:
        for folder_id, sessions in list(self.watchers.items()):
            sessions.discard(session)
            if not sessions:
                del self.watchers[folder_id]

    def folder_changed(self, folder_id: int) -> None:
        for session in self.watchers.get(folder_id, ()):
            if session.selected is not None:
                session.selected.changed.set()

    def wake_all(self) -> None:
        for folder_id in list(self.watchers):
            self.folder_changed(folder_id)

    async def start(self, host: str, port: int, tls_port: int | None = None) -> None:
        self.servers.append(await asyncio.start_server(functools.partial(self._client, tls=False), host, port))
        if tls_port and self.tls_context is not None:
            self.servers.append(
                await asyncio.start_server(
                    functools.partial(self._client, tls=True), host, tls_port, ssl=self.tls_context
                )
            )
        if connections["default"].vendor == "postgresql" and settings.IMAP_LISTEN:
            self._listener = asyncio.ensure_future(self._listen())

    async def _client(self, reader, writer, tls: bool) -> None:
        task = asyncio.current_task()
        connection = Connection(self, reader, writer, tls)
        self.connections.add(task)
        self.open_connections.add(connection)
        try:
            await connection.serve()
        finally:
            self.connections.discard(task)
            self.open_connections.discard(connection)

    async def _listen(self) -> None:
        import psycopg

        params = connections["default"].settings_dict
        options = {k: v for k, v in (params.get("OPTIONS") or {}).items() if k in LIBPQ_OPTIONS}
        conninfo = psycopg.conninfo.make_conninfo(
            dbname=params["NAME"],
            user=params.get("USER") or None,
            password=params.get("PASSWORD") or None,
            host=params.get("HOST") or None,
            port=str(params["PORT"]) if params.get("PORT") else None,
            **options,
        )
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute("LISTEN mss_imap")
                    self.listening = True
                    self.wake_all()  # anything missed while not listening
                    async for note in conn.notifies():
                        if note.payload.isdigit():
                            self.folder_changed(int(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "imap change notifications unavailable (%s): polling every %ss",
                    type(exc).__name__,
                    settings.IMAP_POLL_SECONDS,
                )
            self.listening = False
            self.wake_all()
            await asyncio.sleep(2)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.open_connections):
            connection.writer.transport.abort()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=5)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, self.close_threads)

    def close_threads(self) -> None:
        """Close the database connection of every pool thread, then stop the pool."""
        barrier = threading.Barrier(self.workers)

        def close_here():
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)
            connections.close_all()

        for future in [self.executor.submit(close_here) for _ in range(self.workers)]:
            future.result()
        self.executor.shutdown(wait=True)


def check_bind(host: str) -> None:
    """Refuse to serve passwords in clear beyond this machine: without a certificate the server
    only listens on loopback (the embedded set-up)."""
    import ipaddress

    if server_context() is not None:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "CLIENTS_TLS_CERT and CLIENTS_TLS_KEY are required to listen on a non-loopback address"
        )


async def serve(host: str, port: int, tls_port: int | None = None, ready=None) -> None:
    check_bind(host)
    server = ImapServer()
    await server.start(host, port, tls_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "imap listening on %s:%s (tls=%s, implicit tls port=%s)", host, port, server.tls_context is not None, tls_port
    )
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        await server.stop()
        log.info("imap stopped")
