"""The listening sockets and their accept loops, which admit connections within the bound.

asyncio's own server (behind aiohttp's TCPSite) accepts whatever arrives and, out of
descriptors, logs a traceback per attempt in a tight loop; it has no way to stop accepting
for a while. Here each listening socket stays registered with the loop while the bound has
room, as asyncio's is, and its callback accepts what waits (so a new connection costs what it
costs asyncio); it stops reading while the bound is reached (connections.Connections), backs
off after an accept error as Go's http.Server does (5 ms, doubling up to 1 s) and logs those
errors rate-limited (accepterrors).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .accepterrors import AcceptErrorLog
from .connections import Connections

FIRST_BACKOFF, LAST_BACKOFF = 0.005, 1.0
ACCEPTS_PER_CALL = 16  # asyncio's own accept takes up to a backlog's worth at a time
# The client gave up before the accept: nothing to wait for or log (Go retries these too).
_CLIENT_GONE = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR))


def backlog() -> int:
    """As Go: the kernel's most (net.core.somaxconn), so that a burst of new connections
    waits in the queue rather than having its SYNs dropped (a client retries one after 1 s)."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return socket.SOMAXCONN


def bind(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for `host` (None: every address, IPv4 and IPv6), as asyncio's
    create_server makes them: SO_REUSEADDR, and IPv6 sockets for IPv6 only."""
    sockets: list[socket.socket] = []
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog())
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@dataclass(frozen=True)
class ConnectionLimits:
    """--web.max-connections (before the descriptor cap), --web.read-header-timeout and
    --web.idle-timeout; the defaults are argued in the README, Security."""

    max_connections: int = 512
    header_timeout: float = 10.0
    idle_timeout: float = 75.0


class Listeners:
    """Every --web.listen-address of one runner, sharing one bound on connections."""

    def __init__(
        self,
        runner: web.AppRunner,
        limit: int,
        timeouts: ConnectionLimits,
        tls: ssl.SSLContext | None,
    ) -> None:
        assert runner.server is not None, "runner.setup() first"
        self.connections = Connections(
            runner.server, limit, timeouts.header_timeout, timeouts.idle_timeout, tls
        )
        self.connections.on_room = self._resume
        self.sockets: list[socket.socket] = []
        self._loop = asyncio.get_running_loop()
        self._errors = AcceptErrorLog()
        self._backoff: dict[socket.socket, float] = {}
        self._retries: dict[socket.socket, asyncio.TimerHandle] = {}

    def listen(self, host: str | None, port: int) -> None:
        for sock in bind(host, port):
            self.sockets.append(sock)
            self._backoff[sock] = FIRST_BACKOFF
            self._loop.add_reader(sock, self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        """The listener is readable: accept what waits, up to ACCEPTS_PER_CALL at a time (a
        flood must not hold the loop), while the bound has room; at the bound, make room and
        stop reading every listener until a connection closes."""
        connections = self.connections
        for attempt in range(ACCEPTS_PER_CALL):
            if not connections.room():
                if attempt == 0:  # called as readable: a connection waits
                    connections.make_room()
                    for sock in self.sockets:
                        self._loop.remove_reader(sock)
                return  # else called again if one still waits
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _CLIENT_GONE:
                    self._back_off(listener, exc)
                    return
                continue
            self._backoff[listener] = FIRST_BACKOFF
            connections.open(sock)

    def _back_off(self, listener: socket.socket, exc: OSError) -> None:
        """Log (rate-limited) and stop reading `listener` for a while, longer each time."""
        self._errors.record(exc, self._loop.time())
        self._loop.remove_reader(listener)
        backoff = self._backoff[listener]
        self._backoff[listener] = min(backoff * 2, LAST_BACKOFF)
        self._retries[listener] = self._loop.call_later(backoff, self._retry, listener)

    def _retry(self, listener: socket.socket) -> None:
        del self._retries[listener]
        self._loop.add_reader(listener, self._accept, listener)

    def _resume(self) -> None:
        for sock in self.sockets:
            if sock not in self._retries:
                self._loop.add_reader(sock, self._accept, sock)

    async def close(self) -> None:
        """Stop accepting; the runner's cleanup then closes the connections."""
        for sock in self.sockets:
            self._loop.remove_reader(sock)
            sock.close()
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        self.connections.on_room = lambda: None
        self.connections.close_all()
