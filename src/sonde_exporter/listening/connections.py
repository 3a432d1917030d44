"""The open client connections of every listener: a bound on them, and their header deadline.

Past the bound (--web.max-connections), a new connection takes the place of the oldest one
that waits for a request (idle on keep-alive, still sending its headers, or in its TLS
handshake), which is closed; nginx reuses its idle keep-alive connections the same way. Only
when every connection is inside a request does the listener stop accepting, and new
connections wait in the kernel's backlog, as behind Prometheus' LimitListener. So idle and
slow clients can never lock out a health check or a scrape, and a request being answered is
never cut. Refusing (accept and close) would turn away the health check along with the flood.

A connection must complete its first request's headers within the header timeout
(--web.read-header-timeout), TLS handshake included. After each answer, aiohttp's keep-alive
timer (--web.idle-timeout) closes a connection whose next request's headers have not arrived.
Nothing here runs per request, and little per connection: rather than a timer each, one
sweep, armed while connections are young, closes the late ones (bench/connection_cost.py).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .malformed import HEAD, malformed_request

SWEEP_EVERY = 0.5
"""The header deadline's resolution: a late connection is closed within this after it."""


class Connection(web.RequestHandler):
    """aiohttp's handler of one connection, which gives its slot back when the socket closes."""

    __slots__ = ("_bound", "_handshake", "_head")

    def __init__(self, bound: Connections, server: web.Server, **handler_args: Any) -> None:
        super().__init__(server, loop=bound.loop, **handler_args)
        self._bound = bound
        self._handshake: asyncio.Task[Any] | None = None
        self._head = b""

    def data_received(self, data: bytes) -> None:
        self._head = data[:HEAD]  # where a request aiohttp cannot parse names its path
        super().data_received(data)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse: malformed.py's answer; anything else (a
        handler's bug) as aiohttp answers it."""
        if isinstance(exc, HttpProcessingError) and status == 400:
            return malformed_request(self._head, request.remote, message or str(exc))
        return super().handle_error(request, status, exc, message)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._bound.release(self)

    def waiting(self) -> bool:
        """Waiting for a request: idle, or its headers not all in (or not yet connected).

        Read from aiohttp's handler: the condition its own keep-alive timer closes a
        connection in (RequestHandler._process_keepalive), read only when a connection is
        to be chosen, so that requests pay nothing for it.
        """
        if self.transport is None:
            return self._handshake is not None
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def drop(self) -> None:
        """Close now, without TLS's closing exchange: nothing is being answered."""
        if self.transport is not None:
            self.transport.abort()
        elif self._handshake is not None:
            self._handshake.cancel()

    def late(self) -> bool:
        """Past the header deadline: no request's headers complete yet."""
        return self._request_count == 0 and self.waiting()


class Connections:
    def __init__(
        self,
        server: web.Server,
        limit: int,
        header_timeout: float,
        idle_timeout: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.limit = limit
        self.on_room: Callable[[], None] = lambda: None
        """Called once a slot frees after `make_room` (the listeners resume)."""
        self._server = server
        self._header_timeout = header_timeout
        self._idle_timeout = idle_timeout
        self._tls = tls
        self._open: dict[Connection, None] = {}  # oldest first
        self._young: dict[Connection, float] = {}  # header deadline, oldest first
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._full = False

    def __len__(self) -> int:
        return len(self._open)

    def room(self) -> bool:
        return len(self._open) < self.limit

    def make_room(self) -> None:
        """Full, and a connection waits to be accepted: close the oldest waiting connection
        (while every connection is inside a request, none), and call `on_room` when a slot
        frees."""
        self._full = True
        for conn in self._open:
            if conn.waiting():
                conn.drop()
                return

    def open(self, sock: socket.socket) -> None:
        """Take over the accepted `sock` (there was room)."""
        conn = Connection(self, self._server, access_log=None, keepalive_timeout=self._idle_timeout)
        self._open[conn] = None
        deadline = self.loop.time() + self._header_timeout
        self._young[conn] = deadline
        if self._sweep_timer is None:
            self._sweep_timer = self.loop.call_at(deadline, self._sweep)
        conn._handshake = self.loop.create_task(self._connect(sock, conn))

    def _sweep(self) -> None:
        """Close the connections past their header deadline; again at the next deadline, at
        most every SWEEP_EVERY seconds."""
        now = self.loop.time()
        expired = []
        for conn, deadline in self._young.items():
            if deadline > now:
                break
            expired.append(conn)
        for conn in expired:
            del self._young[conn]
            if conn.late():
                conn.drop()
        self._sweep_timer = None
        for deadline in self._young.values():
            self._sweep_timer = self.loop.call_at(max(deadline, now + SWEEP_EVERY), self._sweep)
            break

    async def _connect(self, sock: socket.socket, conn: Connection) -> None:
        connected = False
        try:
            await self.loop.connect_accepted_socket(
                lambda: conn,
                sock,
                ssl=self._tls,
                ssl_handshake_timeout=self._header_timeout if self._tls else None,
                ssl_shutdown_timeout=self._header_timeout if self._tls else None,
            )
            connected = True
        except OSError:
            pass  # a handshake refused, timed out or reset: the client's problem, as in Go
        finally:
            conn._handshake = None
            if not connected:
                sock.close()
                self.release(conn)

    def release(self, conn: Connection) -> None:
        """Give the slot back (once: a TLS handshake that fails calls twice)."""
        if self._open.pop(conn, 0) is None:
            self._young.pop(conn, None)
            if self._full:
                self._full = False
                self.on_room()

    def close_all(self) -> None:
        """At shutdown: TLS handshakes still under way are abandoned (aiohttp's runner closes
        the connected ones, letting requests in progress finish)."""
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        for conn in list(self._open):
            if conn.transport is None:
                conn.drop()
