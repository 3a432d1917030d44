"""What the POP3 and IMAP clients share: a CRLF line stream over the shared connect step,
and the steps of one mailbox session that the poller runs and times."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

from ...config import AddressChoice, ReceiveSettings
from ...connect import bind_source, connect
from ...ipfilter import TargetForbidden
from ...prober_base import ProbeFailure, Reason
from ...resolve import choose_address
from ...targets import MailUrl
from ...tls import describe_tls_error
from .headers import MailInfo

MAX_LINE = 64 * 1024
MAX_HEADERS = 256 * 1024


class Connection:
    """A CRLF line stream to a mail server that can switch to TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: MailUrl, address: AddressChoice) -> Connection:
        """Choose the address and connect as every prober does; failures are receive_connect."""
        try:
            chosen = await choose_address(
                url.host, address.preferred_ip_protocol, address.ip_protocol_fallback
            )
        except ProbeFailure as failure:
            raise ProbeFailure(Reason.RECEIVE_CONNECT, failure.message) from None
        try:  # the module's filter, as for every socket a probe opens (no port rule: any port)
            address.target_filter.check_address(chosen.ip)
        except TargetForbidden as refused:
            raise ProbeFailure(Reason.TARGET_FORBIDDEN, f"mailbox: {refused.message}") from None
        sock = socket.socket(chosen.family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if address.source_ip_address is not None:
                bind_source(sock, address.source_ip_address)
            await connect(sock, chosen.ip, url.port)
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_LINE)
        except ProbeFailure as failure:
            sock.close()
            raise ProbeFailure(Reason.RECEIVE_CONNECT, failure.message) from None
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    async def start_tls(self, context: ssl.SSLContext, server_name: str) -> None:
        try:
            await self.writer.start_tls(context, server_hostname=server_name)
        except OSError as exc:  # ssl.SSLError, or the connection reset or closed mid-handshake
            raise ProbeFailure(Reason.RECEIVE_TLS, describe_tls_error(exc)) from None

    async def readline(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise ProbeFailure(Reason.RECEIVE_ERROR, "the server closed the connection") from None
        except asyncio.LimitOverrunError:
            raise ProbeFailure(
                Reason.RECEIVE_ERROR, f"the server sent a line longer than {MAX_LINE} bytes"
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


def reply_text(line: bytes) -> str:
    """A server reply as it may appear in a failure message: text, and not too long."""
    return line.decode("utf-8", "replace")[:200]


class MailSession:
    """One login session: connect, tls, auth, list, delete, finish (the poller times each)."""

    def __init__(self, settings: ReceiveSettings, address: AddressChoice) -> None:
        self.settings = settings
        self.address = address
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
        self.conn = await Connection.open(self.url, self.address)
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


def now() -> float:
    """The clock of every receive-side timestamp (the same as the SMTP side's)."""
    return time.perf_counter()
