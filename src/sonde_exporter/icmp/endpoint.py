"""One shared ICMP socket, read by the event loop, and its reply demultiplexer.

Why a demultiplexer: every probe of a family sends on the same socket, so the endpoint's
reader gets every reply and routes it to the exchange (exchange.py) that sent the request,
by (identifier, sequence) and then source address and payload nonce; a traceroute's Time
Exceeded by the quoted (identifier, sequence) and destination. Anything else counts as
unmatched and is dropped.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import time
from enum import StrEnum

from ..logs import fields
from . import linux
from .exchange import EchoExchange as EchoExchange  # re-exported: the prober imports it here
from .packets import (
    ANCILLARY_SIZE,
    ECHO_REPLY,
    ECHO_REQUEST,
    RECV_BUFFER,
    SendOptions,
    parse_echo_reply,
    read_ancillary,
)
from .time_exceeded import ERROR_ANCILLARY_SIZE, parse_queued, parse_raw, set_intake

logger = logging.getLogger("sonde_exporter.icmp")


class SocketMode(StrEnum):
    """The ICMP socket type of a family, as /metrics shows it (sonde_icmp_socket_mode).

    It decides who writes the checksum (raw IPv4: us) and whether replies arrive behind
    their IP header (raw IPv4 again).
    """

    DATAGRAM = "datagram"
    """Unprivileged (net.ipv4.ping_group_range); the kernel demultiplexes replies by id."""
    RAW = "raw"
    """Needs root or CAP_NET_RAW; receives a copy of every ICMP packet of the family."""
    NONE = "none"
    """Neither may be opened: ICMP probes fail with icmp_permission (or io_error)."""


class Endpoint:
    """One long-lived ICMP socket of one family, read by the event loop, shared by probes."""

    def __init__(
        self,
        family: socket.AddressFamily,
        mode: SocketMode,
        sock: socket.socket,
        bound_source: str | None = None,
    ) -> None:
        self.family = family
        self.mode = mode
        self.sock = sock
        self.bound_source = bound_source
        """The source address this socket is bound to, instead of choosing it per packet."""
        self.request_type = ECHO_REQUEST[family]
        self.reply_type = ECHO_REPLY[family]
        # The kernel fills in the checksum for datagram sockets and for ICMPv6.
        self.checksummed = mode is SocketMode.RAW and family == socket.AF_INET
        self.ip_header = mode is SocketMode.RAW and family == socket.AF_INET
        self.fixed_ident: int | None = (
            sock.getsockname()[1] if mode is SocketMode.DATAGRAM else None
        )
        self.drops = 0
        self.unmatched = 0
        self._tracers = 0
        """Traceroutes running on this socket; while any runs, Time Exceeded is let in."""
        self._error_queue = False
        """Read the error queue too (datagram sockets while a traceroute runs)."""
        self._table: dict[tuple[int, int], tuple[EchoExchange, int]] = {}
        self._idents: dict[int, int] = {}
        self._next_seq = random.getrandbits(16)
        self._buffer = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buffer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writable: asyncio.Future[None] | None = None
        self._default_pmtu = (
            sock.getsockopt(socket.IPPROTO_IP, linux.IP_MTU_DISCOVER)
            if family == socket.AF_INET
            else 0
        )

    # -- probes' side ---------------------------------------------------------------

    def exchange(self, ip: str, count: int, payload_size: int) -> EchoExchange:
        self.attach()
        return EchoExchange(self, ip, count, payload_size)

    def open_intake(self) -> None:
        """A traceroute starts: let Time Exceeded in (OSError if the socket refuses)."""
        if not self._tracers:
            set_intake(self.sock, self.family, self.mode is SocketMode.RAW, True)
            self._error_queue = self.mode is SocketMode.DATAGRAM
        self._tracers += 1

    def close_intake(self) -> None:
        """A traceroute ended: after the last one, echo replies only (and no error queue)."""
        self._tracers -= 1
        if not self._tracers:
            self._error_queue = False
            try:
                set_intake(self.sock, self.family, self.mode is SocketMode.RAW, False)
            except OSError as exc:  # only if the socket is closed already
                logger.debug("ICMP intake not narrowed", extra=fields(error=str(exc)))

    def claim_ident(self) -> int:
        """Datagram: the socket's own id (the kernel rewrites it). Raw: a free random one."""
        if self.fixed_ident is not None:
            return self.fixed_ident
        ident = random.getrandbits(16)
        for _ in range(64):
            if ident not in self._idents:
                break
            ident = random.getrandbits(16)
        self._idents[ident] = self._idents.get(ident, 0) + 1
        return ident

    def claim_seq(self, exchange: EchoExchange, index: int) -> int:
        for _ in range(65536):
            seq = self._next_seq
            self._next_seq = (seq + 1) & 0xFFFF
            key = (exchange.ident, seq)
            if key not in self._table:
                self._table[key] = (exchange, index)
                exchange.seqs[index] = seq
                return seq
        raise OSError(errno.EBUSY, "all 65536 ICMP sequence numbers are in flight")

    def release_seq(self, exchange: EchoExchange, index: int) -> None:
        seq = exchange.seqs[index]
        if seq is not None:
            self._table.pop((exchange.ident, seq), None)
            exchange.seqs[index] = None

    def release(self, exchange: EchoExchange) -> None:
        for index in range(exchange.count):
            self.release_seq(exchange, index)
        if self.fixed_ident is None:
            left = self._idents.get(exchange.ident, 0) - 1
            if left > 0:
                self._idents[exchange.ident] = left
            else:
                self._idents.pop(exchange.ident, None)

    def transmit(
        self, packet: bytes, address: tuple[str, int], options: SendOptions, toggle_df: bool
    ) -> None:
        if not toggle_df:
            self._send(packet, address, options)
            return
        sock = self.sock
        sock.setsockopt(socket.IPPROTO_IP, linux.IP_MTU_DISCOVER, linux.IP_PMTUDISC_PROBE)
        try:
            self._send(packet, address, options)
        finally:
            sock.setsockopt(socket.IPPROTO_IP, linux.IP_MTU_DISCOVER, self._default_pmtu)

    def _send(self, packet: bytes, address: tuple[str, int], options: SendOptions) -> None:
        """Send; while the error queue is on, a failed send is tried once more.

        With IP_RECVERR a datagram socket also keeps each ICMP error as a pending socket
        error, which the next send reports (and clears) although that send is fine: so the
        first failure may be stale, and only a second one is the send's own.
        """
        for retry in (False, True):
            try:
                if options:
                    self.sock.sendmsg([packet], options, 0, address)
                else:
                    self.sock.sendto(packet, address)
                return
            except BlockingIOError:
                raise
            except OSError:
                if retry or not self._error_queue:
                    raise

    async def writable(self) -> None:
        """Wait until the socket can send again (its send buffer was full)."""
        loop = asyncio.get_running_loop()
        if self._writable is None or self._writable.done():
            self._writable = loop.create_future()
            loop.add_writer(self.sock.fileno(), self._on_writable)
        await asyncio.shield(self._writable)

    def _on_writable(self) -> None:
        if self._loop is not None:
            self._loop.remove_writer(self.sock.fileno())
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- the reader -----------------------------------------------------------------

    def attach(self) -> None:
        """Read this socket from the running loop (tests run several loops in turn)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        old = self._loop
        if old is not None and not old.is_closed():
            old.remove_reader(self.sock.fileno())
            old.remove_writer(self.sock.fileno())
        self._writable = None
        loop.add_reader(self.sock.fileno(), self.drain)
        self._loop = loop

    def drain(self) -> None:
        """Read every queued packet and route the echo replies to their exchanges."""
        sock, buffer, view = self.sock, self._buffer, self._view
        table = self._table
        while True:
            try:
                size, ancdata, _flags, address = sock.recvmsg_into([view], ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                if self._error_queue:
                    self._drain_errors()
                return
            except OSError as exc:  # a pending socket error is reported once, then cleared
                if not self._error_queue:
                    logger.debug("ICMP socket receive error", extra=fields(error=str(exc)))
                continue
            rx_real, hop, drops = read_ancillary(ancdata)
            if drops is not None:
                self.drops = max(self.drops, drops)
            parsed = parse_echo_reply(buffer, size, self.ip_header, self.reply_type)
            if parsed is None:
                if self._tracers:
                    expired = parse_raw(
                        buffer, size, self.ip_header, self.family, self.request_type
                    )
                    if expired is not None:
                        ident, seq, destination = expired
                        self._expired(ident, seq, destination, address[0], rx_real)
                continue
            ident, seq, start = parsed
            entry = table.get((ident, seq))
            if entry is None:
                self.unmatched += 1
                continue
            exchange, index = entry
            source: str = address[0]
            if self.family == socket.AF_INET6 and "%" in source:
                source = source.partition("%")[0]
            nonce = exchange.nonce
            if (
                source != exchange.ip
                or size - start < len(nonce)
                or buffer[start : start + len(nonce)] != nonce
            ):
                self.unmatched += 1
                continue
            exchange.reply(index, rx_real, time.monotonic_ns(), hop)

    def _drain_errors(self) -> None:
        """Read the error queue: the Time Exceeded of datagram traceroutes (the rest dropped)."""
        sock, buffer, view = self.sock, self._buffer, self._view
        while True:
            try:
                size, ancdata, _flags, address = sock.recvmsg_into(
                    [view], ERROR_ANCILLARY_SIZE, socket.MSG_ERRQUEUE
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.debug("ICMP error queue receive error", extra=fields(error=str(exc)))
                return
            parsed = parse_queued(buffer, size, ancdata, self.family, self.request_type)
            if parsed is not None:
                ident, seq, router = parsed
                rx_real = read_ancillary(ancdata)[0]
                self._expired(ident, seq, address[0], router, rx_real)

    def _expired(self, ident: int, seq: int, destination: str, router: str, rx_real: int) -> None:
        entry = self._table.get((ident, seq))
        if self.family == socket.AF_INET6:
            destination = destination.partition("%")[0]
            router = router.partition("%")[0]
        if entry is None or entry[0].ip != destination:
            self.unmatched += 1
            return
        exchange, index = entry
        exchange.expired(index, rx_real, time.monotonic_ns(), router)

    def close(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.sock.fileno())
            loop.remove_writer(self.sock.fileno())
        self._loop = None
        self.sock.close()
