"""A POP3 client for the mailbox poller: RFC 1939 and STLS (RFC 2595), nothing more."""

from __future__ import annotations

from ...config import AddressChoice, ReceiveSettings
from ...prober_base import ProbeFailure, Reason
from .headers import MailInfo, parse_headers
from .session import MAX_HEADERS, MAX_LINE, MailSession, now, reply_text


class Pop3Session(MailSession):
    """RFC 1939 + STLS (RFC 2595): USER/PASS, UIDL, TOP n 0, DELE, QUIT."""

    def __init__(self, settings: ReceiveSettings, address: AddressChoice) -> None:
        super().__init__(settings, address)
        self._numbers: dict[str, int] = {}

    async def _command(self, command: bytes, reason: Reason, what: str) -> bytes:
        await self.c.send(command)
        reply = await self.c.readline()
        if not reply.startswith(b"+OK"):
            raise ProbeFailure(reason, f"{what}: {reply_text(reply)}")
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
            raise ProbeFailure(Reason.RECEIVE_ERROR, f"POP3 greeting: {reply_text(reply)}")

    async def upgrade(self) -> bool:
        if self.settings.starttls == "opportunistic":
            await self.c.send(b"CAPA")
            reply = await self.c.readline()
            caps = await self._multiline(MAX_LINE) if reply.startswith(b"+OK") else []
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
                f"login as {user!r} failed: {reply_text(reply)}",
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
                info = parse_headers(b"\r\n".join(await self._multiline(MAX_HEADERS)) + b"\r\n")
            out[uid] = info
        return out

    async def delete(self, ids: list[str]) -> None:
        for uid in ids:
            number = self._numbers[uid]
            await self._command(b"DELE %d" % number, Reason.RECEIVE_ERROR, f"DELE {number} failed")

    async def finish(self) -> None:
        await self._command(b"QUIT", Reason.RECEIVE_ERROR, "QUIT failed, deletions not committed")
