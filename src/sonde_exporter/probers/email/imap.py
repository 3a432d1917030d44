"""An IMAP client for the mailbox poller: the RFC 3501 subset it needs, with UIDPLUS."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from ...config import AddressChoice, ReceiveSettings
from ...prober_base import ProbeFailure, Reason
from .headers import PROBE_HEADER, MailInfo, parse_headers
from .session import MAX_HEADERS, MailSession, now, reply_text

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

    def __init__(self, settings: ReceiveSettings, address: AddressChoice) -> None:
        super().__init__(settings, address)
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
            if size > MAX_HEADERS:
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
                    raise ProbeFailure(reason, f"{what}: {reply_text(status)}")
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
            raise ProbeFailure(Reason.RECEIVE_ERROR, f"IMAP greeting: {reply_text(line)}")
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
