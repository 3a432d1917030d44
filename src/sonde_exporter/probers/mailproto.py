"""Small asyncio POP3 and IMAP clients: exactly what the mailbox poller needs, nothing more.

poplib and imaplib block, so they cannot run on the event loop. Both clients here list the
probe mails of a mailbox (POP3: UIDL, then TOP n 0 on new UIDs only; IMAP: UID SEARCH HEADER,
then a PEEK of three header fields), delete chosen ones (POP3: DELE + QUIT; IMAP: \\Deleted +
UID EXPUNGE) and never read a body or touch a mail they were not asked to delete.
Every error is a ProbeFailure with a receive_* reason; no message contains the password.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime

from ..config import MailUrl, ReceiveSettings
from .base import ProbeFailure, Reason

PROBE_HEADER = "X-Sonde-Probe"
"""The header that carries a probe mail's token."""
TOKEN = re.compile(r"^[0-9a-f]{32}$")
"""128 random bits as lowercase hex: what the prober puts in the header."""

_MAX_LINE = 64 * 1024
_MAX_HEADERS = 256 * 1024
_AUTH_METHODS = ("dkim", "spf", "dmarc")
_AUTH_RESULTS = frozenset(
    ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy")
)
"""RFC 8601 result words; anything else is reported as `other`, so the label set is bounded."""


@dataclass(frozen=True, slots=True)
class MailInfo:
    """What the poller knows about one mail: its probe token, when it was sent, its verdicts."""

    token: str | None
    sent: float | None
    """Date header as a Unix time; None when missing or unreadable."""
    auth: tuple[tuple[str, str], ...] = ()
    """(method, result) from Authentication-Results, e.g. (("dkim", "pass"),)."""


def parse_headers(raw: bytes) -> MailInfo:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    value = str(headers.get(PROBE_HEADER, "")).strip().lower()
    token = value if TOKEN.match(value) else None
    sent = None
    date = headers.get("Date")
    if date is not None:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            sent = parsedate_to_datetime(str(date)).timestamp()
    return MailInfo(
        token, sent, auth_results(str(h) for h in headers.get_all("Authentication-Results") or ())
    )


_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*(?:/\s*[0-9]+\s*)?=\s*([A-Za-z0-9_-]+)")


def auth_results(headers: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The dkim, spf and dmarc verdicts, topmost header first (the receiving server's own).

    Within one header a method seen several times (two DKIM signatures) counts as `pass` if
    any instance passed, else as its first result.
    """
    found: dict[str, str] = {}
    for header in headers:
        text = " ".join(header.split())
        while _COMMENT.search(text):
            text = _COMMENT.sub(" ", text)
        current: dict[str, str] = {}
        for part in text.split(";")[1:]:  # the first part is the authserv-id
            match = _RESULT.match(part)
            if match is None:
                continue
            method, result = match.group(1).lower(), match.group(2).lower()
            if method not in _AUTH_METHODS or method in found:
                continue
            result = result if result in _AUTH_RESULTS else "other"
            if current.get(method) != "pass":
                current.setdefault(method, result)
                if result == "pass":
                    current[method] = "pass"
        found.update(current)
    return tuple((m, found[m]) for m in _AUTH_METHODS if m in found)


class Connection:
    """A CRLF line stream to a mail server that can switch to TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: MailUrl) -> Connection:
        try:
            reader, writer = await asyncio.open_connection(url.host, url.port, limit=_MAX_LINE)
        except ConnectionRefusedError:
            raise ProbeFailure(
                Reason.RECEIVE_CONNECT, f"connection to {url.host} port {url.port} refused"
            ) from None
        except OSError as exc:
            raise ProbeFailure(
                Reason.RECEIVE_CONNECT,
                f"cannot connect to {url.host} port {url.port}: {exc.strerror or exc}",
            ) from None
        return cls(reader, writer)

    async def start_tls(self, context: ssl.SSLContext, server_name: str) -> None:
        try:
            await self.writer.start_tls(context, server_hostname=server_name)
        except ssl.SSLCertVerificationError as exc:
            raise ProbeFailure(
                Reason.RECEIVE_TLS, f"certificate verification failed: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise ProbeFailure(
                Reason.RECEIVE_TLS, f"TLS handshake failed: {exc.reason or exc}"
            ) from None
        except (ConnectionError, OSError) as exc:
            raise ProbeFailure(Reason.RECEIVE_TLS, f"TLS handshake failed: {exc}") from None

    async def readline(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise ProbeFailure(Reason.RECEIVE_ERROR, "the server closed the connection") from None
        except asyncio.LimitOverrunError:
            raise ProbeFailure(
                Reason.RECEIVE_ERROR, f"the server sent a line longer than {_MAX_LINE} bytes"
            ) from None
        except OSError as exc:
            raise ProbeFailure(Reason.RECEIVE_ERROR, f"connection error: {exc}") from None
        return line.rstrip(b"\r\n")

    async def read_exactly(self, size: int) -> bytes:
        try:
            return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise ProbeFailure(Reason.RECEIVE_ERROR, "the server closed the connection") from None
        except OSError as exc:
            raise ProbeFailure(Reason.RECEIVE_ERROR, f"connection error: {exc}") from None

    async def send(self, line: bytes) -> None:
        self.writer.write(line + b"\r\n")
        try:
            await self.writer.drain()
        except OSError as exc:
            raise ProbeFailure(Reason.RECEIVE_ERROR, f"connection error: {exc}") from None

    def abort(self) -> None:
        self.writer.transport.abort()


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace")[:200]


class MailSession:
    """One login session: connect, tls, auth, list, delete, finish (the poller times each)."""

    def __init__(self, settings: ReceiveSettings) -> None:
        self.settings = settings
        self.url = settings.parsed_url
        self.conn: Connection | None = None
        self.tls = self.url.implicit_tls or settings.starttls != "never"
        """Whether the tls step has anything to do; opportunistic may still skip it."""
        self.listed_at = 0.0
        """now() when the server's list of mails (UIDL, UID SEARCH) came in."""

    @property
    def c(self) -> Connection:
        assert self.conn is not None, "connect() first"
        return self.conn

    @property
    def server_name(self) -> str:
        return self.settings.tls_config.server_name or self.url.host

    async def connect(self) -> None:
        self.conn = await Connection.open(self.url)
        if not self.url.implicit_tls:
            await self.greeting()

    async def start_tls(self) -> bool:
        """Implicit TLS, or STARTTLS as configured; False when opportunistic found none."""
        if self.url.implicit_tls:
            await self.c.start_tls(self.settings.tls_config.context, self.server_name)
            await self.greeting()
            return True
        if self.settings.starttls == "never":
            return False
        if not await self.upgrade():
            return False
        await self.c.start_tls(self.settings.tls_config.context, self.server_name)
        await self.after_tls()
        return True

    def abort(self) -> None:
        if self.conn is not None:
            self.conn.abort()

    async def greeting(self) -> None:
        raise NotImplementedError

    async def upgrade(self) -> bool:
        """Ask for STARTTLS; False when opportunistic and the server does not offer it."""
        raise NotImplementedError

    async def after_tls(self) -> None:
        """Forget what was learnt before TLS (RFC 2595)."""

    async def login(self) -> None:
        raise NotImplementedError

    async def listing(self, known: dict[str, MailInfo]) -> dict[str, MailInfo]:
        """Every mail of interest now in the mailbox, by a stable id; fetch unknown ids only."""
        raise NotImplementedError

    async def delete(self, ids: list[str]) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        """End the session politely (POP3 commits deletions only here)."""
        raise NotImplementedError


class Pop3Session(MailSession):
    """RFC 1939 + STLS (RFC 2595): USER/PASS, UIDL, TOP n 0, DELE, QUIT."""

    def __init__(self, settings: ReceiveSettings) -> None:
        super().__init__(settings)
        self._numbers: dict[str, int] = {}

    async def _command(self, command: bytes, reason: Reason, what: str) -> bytes:
        await self.c.send(command)
        reply = await self.c.readline()
        if not reply.startswith(b"+OK"):
            raise ProbeFailure(reason, f"{what}: {_text(reply)}")
        return reply

    async def _multiline(self, limit: int) -> list[bytes]:
        lines: list[bytes] = []
        size = 0
        while True:
            line = await self.c.readline()
            if line == b".":
                return lines
            size += len(line) + 2
            if size > limit:
                raise ProbeFailure(Reason.RECEIVE_ERROR, f"server response over {limit} bytes")
            lines.append(line[1:] if line.startswith(b"..") else line)

    async def greeting(self) -> None:
        reply = await self.c.readline()
        if not reply.startswith(b"+OK"):
            raise ProbeFailure(Reason.RECEIVE_ERROR, f"POP3 greeting: {_text(reply)}")

    async def upgrade(self) -> bool:
        if self.settings.starttls == "opportunistic":
            await self.c.send(b"CAPA")
            reply = await self.c.readline()
            caps = await self._multiline(_MAX_LINE) if reply.startswith(b"+OK") else []
            if not any(cap.upper().split()[:1] == [b"STLS"] for cap in caps):
                return False
        await self._command(b"STLS", Reason.RECEIVE_TLS, "the server refused STLS")
        return True

    async def login(self) -> None:
        user, secret = self.settings.username, self.settings.secret or ""
        await self._command(b"USER " + user.encode(), Reason.RECEIVE_AUTH, "USER refused")
        await self.c.send(b"PASS " + secret.encode())
        reply = await self.c.readline()
        if not reply.startswith(b"+OK"):
            # RFC 3206 codes: [AUTH] is a wrong password; [SYS/...] and [IN-USE] are not.
            server_side = b"[SYS/" in reply or b"[IN-USE]" in reply
            raise ProbeFailure(
                Reason.RECEIVE_ERROR if server_side else Reason.RECEIVE_AUTH,
                f"login as {user!r} failed: {_text(reply)}",
            )

    async def listing(self, known: dict[str, MailInfo]) -> dict[str, MailInfo]:
        await self._command(b"UIDL", Reason.RECEIVE_ERROR, "UIDL failed")
        lines = await self._multiline(16 * 1024 * 1024)
        self.listed_at = now()
        listing: dict[str, int] = {}
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():
                listing[parts[1].decode("ascii", "replace")] = int(parts[0])
        self._numbers = listing
        out: dict[str, MailInfo] = {}
        for uid, number in listing.items():
            info = known.get(uid)
            if info is None:
                await self._command(
                    b"TOP %d 0" % number, Reason.RECEIVE_ERROR, f"TOP {number} 0 failed"
                )
                info = parse_headers(b"\r\n".join(await self._multiline(_MAX_HEADERS)) + b"\r\n")
            out[uid] = info
        return out

    async def delete(self, ids: list[str]) -> None:
        for uid in ids:
            number = self._numbers[uid]
            await self._command(b"DELE %d" % number, Reason.RECEIVE_ERROR, f"DELE {number} failed")

    async def finish(self) -> None:
        await self._command(b"QUIT", Reason.RECEIVE_ERROR, "QUIT failed, deletions not committed")


_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_CAPABILITY = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_FETCH_UID = re.compile(rb"^\* \d+ FETCH \(.*\bUID (\d+)", re.IGNORECASE)
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"\)?$')
_FIELDS = f"({PROBE_HEADER} Date Authentication-Results)"


@dataclass(slots=True)
class _Untagged:
    line: bytes
    literals: list[bytes]


class ImapSession(MailSession):
    """RFC 3501 subset: STARTTLS, AUTHENTICATE PLAIN or LOGIN, SELECT, UID SEARCH/FETCH/STORE,
    UID EXPUNGE (UIDPLUS, RFC 4315), LOGOUT."""

    def __init__(self, settings: ReceiveSettings) -> None:
        super().__init__(settings)
        self._tag = 0
        self._caps: set[str] = set()
        self._uidvalidity = ""
        self._preauth = False

    async def _read(self) -> _Untagged:
        """One response line with its literals read in."""
        line = await self.c.readline()
        literals: list[bytes] = []
        while (match := _LITERAL.search(line)) is not None:
            size = int(match.group(1))
            if size > _MAX_HEADERS:
                raise ProbeFailure(Reason.RECEIVE_ERROR, f"IMAP literal of {size} bytes")
            literals.append(await self.c.read_exactly(size))
            line += b" " + await self.c.readline()
        return _Untagged(line, literals)

    async def _command(
        self, command: bytes, reason: Reason, what: str, continuation: bytes | None = None
    ) -> list[_Untagged]:
        self._tag += 1
        tag = b"s%d" % self._tag
        await self.c.send(tag + b" " + command)
        untagged: list[_Untagged] = []
        while True:
            response = await self._read()
            line = response.line
            if line.startswith(b"+") and continuation is not None:
                await self.c.send(continuation)
                continuation = None
                continue
            if line.startswith(tag + b" "):
                status = line[len(tag) + 1 :]
                if not status.upper().startswith(b"OK"):
                    raise ProbeFailure(reason, f"{what}: {_text(status)}")
                self._learn_caps(status)
                return untagged
            if line.startswith(b"+"):
                raise ProbeFailure(Reason.RECEIVE_ERROR, f"{what}: unexpected continuation")
            untagged.append(response)

    def _learn_caps(self, line: bytes) -> None:
        match = _CAPABILITY.search(line)
        if match is not None:
            self._caps = {c.decode("ascii", "replace").upper() for c in match.group(1).split()}

    async def _capabilities(self) -> set[str]:
        if not self._caps:
            for response in await self._command(
                b"CAPABILITY", Reason.RECEIVE_ERROR, "CAPABILITY failed"
            ):
                if response.line.upper().startswith(b"* CAPABILITY "):
                    self._learn_caps(b"[CAPABILITY " + response.line[13:] + b"]")
        return self._caps

    async def greeting(self) -> None:
        line = (await self._read()).line
        upper = line.upper()
        if not (upper.startswith(b"* OK") or upper.startswith(b"* PREAUTH")):
            raise ProbeFailure(Reason.RECEIVE_ERROR, f"IMAP greeting: {_text(line)}")
        self._preauth = upper.startswith(b"* PREAUTH")
        self._learn_caps(line)

    async def upgrade(self) -> bool:
        if (
            self.settings.starttls == "opportunistic"
            and "STARTTLS" not in await self._capabilities()
        ):
            return False
        await self._command(b"STARTTLS", Reason.RECEIVE_TLS, "the server refused STARTTLS")
        return True

    async def after_tls(self) -> None:
        self._caps = set()

    async def login(self) -> None:
        if self._preauth:
            return
        user, secret = self.settings.username, self.settings.secret or ""
        caps = await self._capabilities()
        what = f"login as {user!r} failed"
        self._caps = set()  # the login reply may announce more (UIDPLUS); else ask again
        try:
            if "AUTH=PLAIN" in caps:
                blob = base64.b64encode(f"\0{user}\0{secret}".encode())
                if "SASL-IR" in caps:
                    await self._command(b"AUTHENTICATE PLAIN " + blob, Reason.RECEIVE_AUTH, what)
                else:
                    await self._command(
                        b"AUTHENTICATE PLAIN", Reason.RECEIVE_AUTH, what, continuation=blob
                    )
            elif "LOGINDISABLED" in caps:
                raise ProbeFailure(Reason.RECEIVE_AUTH, "the server disables LOGIN here (use TLS)")
            else:
                await self._command(
                    b"LOGIN " + _quote(user) + b" " + _quote(secret), Reason.RECEIVE_AUTH, what
                )
        except ProbeFailure as failure:
            # RFC 5530 codes: only AUTHENTICATIONFAILED (or no code) means wrong credentials.
            codes = ("[UNAVAILABLE]", "[SERVERBUG]", "[CONTACTADMIN]", "[INUSE]")
            if failure.reason is Reason.RECEIVE_AUTH and any(c in failure.message for c in codes):
                raise ProbeFailure(Reason.RECEIVE_ERROR, failure.message) from None
            raise

    async def listing(self, known: dict[str, MailInfo]) -> dict[str, MailInfo]:
        mailbox = self.settings.mailbox
        for response in await self._command(
            b"SELECT " + _quote(mailbox),
            Reason.RECEIVE_ERROR,
            f"cannot select mailbox {mailbox!r}",
        ):
            match = _UIDVALIDITY.search(response.line)
            if match is not None:
                self._uidvalidity = match.group(1).decode()
        uids: list[str] = []
        search = b"UID SEARCH HEADER " + PROBE_HEADER.encode() + b' ""'
        found = await self._command(search, Reason.RECEIVE_ERROR, "UID SEARCH failed")
        self.listed_at = now()
        for response in found:
            if response.line.upper().startswith(b"* SEARCH"):
                uids += [u.decode() for u in response.line.split()[2:] if u.isdigit()]
        out = {
            f"{self._uidvalidity}:{uid}": known.get(f"{self._uidvalidity}:{uid}") for uid in uids
        }
        missing = [key.partition(":")[2] for key, info in out.items() if info is None]
        if missing:
            fetch = b"UID FETCH %s (UID BODY.PEEK[HEADER.FIELDS %s])" % (
                ",".join(missing).encode(),
                _FIELDS.encode(),
            )
            for response in await self._command(fetch, Reason.RECEIVE_ERROR, "UID FETCH failed"):
                match = _FETCH_UID.match(response.line)
                if match is None:
                    continue
                raw = response.literals[0] if response.literals else _quoted(response.line)
                out[f"{self._uidvalidity}:{match.group(1).decode()}"] = parse_headers(raw)
        return {key: info for key, info in out.items() if info is not None}

    async def delete(self, ids: list[str]) -> None:
        uids = ",".join(key.partition(":")[2] for key in ids).encode()
        await self._command(
            b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % uids,
            Reason.RECEIVE_ERROR,
            "UID STORE failed",
        )
        if "UIDPLUS" in await self._capabilities():
            await self._command(b"UID EXPUNGE " + uids, Reason.RECEIVE_ERROR, "UID EXPUNGE failed")
            return
        # Without UIDPLUS, EXPUNGE removes every \\Deleted mail: only safe when all are ours.
        deleted: set[bytes] = set()
        for response in await self._command(
            b"UID SEARCH DELETED", Reason.RECEIVE_ERROR, "UID SEARCH failed"
        ):
            if response.line.upper().startswith(b"* SEARCH"):
                deleted.update(response.line.split()[2:])
        if deleted <= set(uids.split(b",")):
            await self._command(b"EXPUNGE", Reason.RECEIVE_ERROR, "EXPUNGE failed")

    async def finish(self) -> None:
        await self._command(b"LOGOUT", Reason.RECEIVE_ERROR, "LOGOUT failed")


def _quote(value: str) -> bytes:
    return b'"' + value.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _quoted(line: bytes) -> bytes:
    match = _QUOTED.search(line.rstrip(b")"))
    if match is None:
        return b""
    return re.sub(rb"\\(.)", rb"\1", match.group(1))


def new_session(settings: ReceiveSettings) -> MailSession:
    if settings.parsed_url.scheme.startswith("pop3"):
        return Pop3Session(settings)
    return ImapSession(settings)


def now() -> float:
    """The clock of every receive-side timestamp (the same as the SMTP side's)."""
    return time.perf_counter()
