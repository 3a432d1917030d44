"""Shared ICMP echo sockets: one per address family for the whole process, plus the
demultiplexer that hands every echo reply to the probe that sent the request.

Why shared: a raw ICMP socket receives a copy of every ICMP packet on the host, so one raw
socket per probe costs O(probes²) under concurrency and loses replies. Unprivileged
datagram ICMP sockets (allowed by net.ipv4.ping_group_range) are preferred; without them
one raw socket per family is used (root or CAP_NET_RAW). Either way replies are matched
on identifier, sequence number, source address and a random per-probe payload prefix, so
late, stray and forged replies are never counted.

Why kernel timestamps: the RTT is the kernel's receive time (SO_TIMESTAMPNS) minus the
time taken right before sendmsg, so a busy event loop does not inflate it. Both are
CLOCK_REALTIME; a monotonic measurement taken around them bounds the result, so a clock
step cannot produce a wrong RTT (it falls back to the monotonic one).

Linux only: the socket options below are Linux's.
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import logging
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .logs import fields

logger = logging.getLogger("sonde_exporter.icmp")

DATAGRAM = "datagram"
RAW = "raw"
NONE = "none"

# Linux constants the socket module of Python 3.11 does not export.
_SO_TIMESTAMPNS = 35
_SO_RXQ_OVFL = 40
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_IP_PKTINFO = 8
_IP_MTU_DISCOVER = 10
_IP_PMTUDISC_PROBE = 3
_IP_RECVTTL = 12
_IP_TTL = 2

_ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
FAMILY_NAMES = {socket.AF_INET: "ip4", socket.AF_INET6: "ip6"}

MAX_PAYLOAD = 65507
"""The largest echo payload that fits an IPv4 datagram (65535 - 20 - 8)."""
NONCE_SIZE = 8
_RECV_BUFFER = 65536 + 64
_BUFFER_BYTES = 4 << 20
_TIMESPEC = struct.Struct("@ll")
_INT = struct.Struct("@i")
_UINT = struct.Struct("@I")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) + 2 * socket.CMSG_SPACE(_INT.size) + 64
_ID_SEQ = struct.Struct("!HH")
_HEADER = struct.Struct("!BBHHH")
_FILL = bytes(range(256)) * (MAX_PAYLOAD // 256 + 1)
_PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM)


class IcmpUnavailable(Exception):
    """No ICMP socket for this family; `permission` tells a missing privilege from the rest."""

    def __init__(self, message: str, permission: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permission = permission


@dataclass(frozen=True, slots=True)
class SocketMode:
    """What this process may open for one family: datagram, raw, or none (and why not)."""

    family: socket.AddressFamily
    mode: str
    problem: str = ""
    permission: bool = False


def ones_sum(data: bytes) -> int:
    """The 16-bit one's complement sum of `data` (RFC 1071), not yet complemented.

    A big-endian integer of the words is congruent to their sum modulo 0xFFFF, so one
    conversion in C replaces a Python loop over the words.
    """
    if len(data) % 2:
        data += b"\0"
    value = int.from_bytes(data, "big")
    total = value % 0xFFFF
    return 0xFFFF if total == 0 and value else total


def echo_checksum(header_sum: int, payload_sum: int) -> int:
    total = header_sum + payload_sum
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@lru_cache(maxsize=256)
def send_options(
    family: socket.AddressFamily, ttl: int | None, source: str | None, dont_fragment: bool
) -> tuple[tuple[tuple[int, int, bytes], ...], bool]:
    """Ancillary data for every echo request of a module, built once per (module, family).

    Returns (cmsgs, toggle_df): IPv4 has no per-packet DF control message, so the shared
    socket switches IP_MTU_DISCOVER around the send instead (the event loop is single
    threaded, so no other send can slip in between).
    """
    cmsgs: list[tuple[int, int, bytes]] = []
    if family == socket.AF_INET:
        if ttl is not None:
            cmsgs.append((socket.IPPROTO_IP, _IP_TTL, _INT.pack(ttl)))
        if source is not None:
            spec = socket.inet_pton(socket.AF_INET, source)
            cmsgs.append((socket.IPPROTO_IP, _IP_PKTINFO, _INT.pack(0) + spec + bytes(4)))
        return tuple(cmsgs), dont_fragment
    if ttl is not None:
        cmsgs.append((socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, _INT.pack(ttl)))
    if source is not None:
        packed = socket.inet_pton(socket.AF_INET6, source.partition("%")[0])
        cmsgs.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, packed + _UINT.pack(0)))
    if dont_fragment:
        cmsgs.append((socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, _INT.pack(1)))
    return tuple(cmsgs), False


class EchoExchange:
    """One probe's echo requests on a shared socket, and the replies routed back to it.

    Use as a context manager: leaving it releases the probe's sequence numbers, after
    which replies to them are ignored.
    """

    __slots__ = (
        "_endpoint",
        "_payload_sum",
        "_waiter",
        "clock_fallbacks",
        "count",
        "duplicates",
        "hop_limits",
        "ident",
        "ip",
        "nonce",
        "payload",
        "received",
        "rtt_ns",
        "sent",
        "sent_mono",
        "sent_real",
        "seqs",
    )

    def __init__(self, endpoint: Endpoint, ip: str, count: int, payload_size: int) -> None:
        self._endpoint = endpoint
        self.ip = ip.partition("%")[0]
        self.count = count
        nonce = random.getrandbits(8 * NONCE_SIZE).to_bytes(NONCE_SIZE, "big")
        self.payload = (nonce + _FILL[: max(0, payload_size - NONCE_SIZE)])[:payload_size]
        self.nonce = self.payload[:NONCE_SIZE]
        self._payload_sum = ones_sum(self.payload) if endpoint.checksummed else 0
        self.ident = endpoint.claim_ident()
        self.seqs: list[int | None] = [None] * count
        self.sent_real = [0] * count
        self.sent_mono = [0] * count
        self.rtt_ns: list[int | None] = [None] * count
        self.hop_limits: list[int | None] = [None] * count
        self.sent = 0
        self.received = 0
        self.duplicates = 0
        self.clock_fallbacks = 0
        self._waiter: asyncio.Future[None] | None = None

    def __enter__(self) -> EchoExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._endpoint.release(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()

    async def send(
        self,
        index: int,
        address: tuple[str, int],
        options: tuple[tuple[int, int, bytes], ...],
        toggle_df: bool,
    ) -> None:
        """Send echo request `index`; OSError when the kernel refuses it."""
        endpoint = self._endpoint
        seq = endpoint.claim_seq(self, index)
        checksum = 0
        if endpoint.checksummed:
            checksum = echo_checksum(
                endpoint.request_type * 256 + self.ident + seq, self._payload_sum
            )
        packet = _HEADER.pack(endpoint.request_type, 0, checksum, self.ident, seq) + self.payload
        while True:
            self.sent_mono[index] = time.monotonic_ns()
            self.sent_real[index] = time.time_ns()
            try:
                endpoint.transmit(packet, address, options, toggle_df)
            except BlockingIOError:
                await endpoint.writable()
                continue
            except OSError:
                endpoint.release_seq(self, index)
                raise
            break
        self.sent += 1
        endpoint.drain()  # on loopback the reply is usually queued already

    def reply(self, index: int, rx_real: int, now_mono: int, hop_limit: int | None) -> None:
        """Record a reply to request `index` (called by the endpoint's reader)."""
        if self.rtt_ns[index] is not None:
            self.duplicates += 1
            return
        bound = now_mono - self.sent_mono[index]
        rtt = rx_real - self.sent_real[index]
        if not 0 <= rtt <= bound:  # no kernel timestamp, or the wall clock stepped
            if rx_real:
                self.clock_fallbacks += 1
            rtt = bound
        self.rtt_ns[index] = rtt
        self.hop_limits[index] = hop_limit
        self.received += 1
        waiter = self._waiter
        if waiter is not None and self.received >= self.sent and not waiter.done():
            waiter.set_result(None)

    async def wait(self, until: float) -> None:
        """Wait until every request sent so far has a reply, or until loop time `until`."""
        if self.received >= self.sent:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout_at(until):
                await self._waiter
        except TimeoutError:
            pass
        finally:
            self._waiter = None


class Endpoint:
    """One long-lived ICMP socket of one family, read by the event loop, shared by probes."""

    def __init__(
        self,
        family: socket.AddressFamily,
        mode: str,
        sock: socket.socket,
        bound_source: str | None = None,
    ) -> None:
        self.family = family
        self.mode = mode
        self.sock = sock
        self.bound_source = bound_source
        """The source address this socket is bound to, instead of choosing it per packet."""
        self.request_type = _ECHO_REQUEST[family]
        self.reply_type = _ECHO_REPLY[family]
        # The kernel fills in the checksum for datagram sockets and for ICMPv6.
        self.checksummed = mode == RAW and family == socket.AF_INET
        self.ip_header = mode == RAW and family == socket.AF_INET
        self.fixed_ident: int | None = sock.getsockname()[1] if mode == DATAGRAM else None
        self.drops = 0
        self.unmatched = 0
        self._table: dict[tuple[int, int], tuple[EchoExchange, int]] = {}
        self._idents: dict[int, int] = {}
        self._next_seq = random.getrandbits(16)
        self._buffer = bytearray(_RECV_BUFFER)
        self._view = memoryview(self._buffer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writable: asyncio.Future[None] | None = None
        self._default_pmtu = (
            sock.getsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER) if family == socket.AF_INET else 0
        )

    # -- probes' side ---------------------------------------------------------------

    def exchange(self, ip: str, count: int, payload_size: int) -> EchoExchange:
        self._attach()
        return EchoExchange(self, ip, count, payload_size)

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
        self,
        packet: bytes,
        address: tuple[str, int],
        options: tuple[tuple[int, int, bytes], ...],
        toggle_df: bool,
    ) -> None:
        sock = self.sock
        if toggle_df:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_PROBE)
            try:
                sock.sendmsg([packet], options, 0, address)
            finally:
                sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, self._default_pmtu)
        elif options:
            sock.sendmsg([packet], options, 0, address)
        else:
            sock.sendto(packet, address)

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

    def _attach(self) -> None:
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
                size, ancdata, _flags, address = sock.recvmsg_into([view], _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # a pending socket error is reported once, then cleared
                logger.debug("ICMP socket receive error", extra=fields(error=str(exc)))
                continue
            rx_real = 0
            hop: int | None = None
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET:
                    if kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                        sec, nsec = _TIMESPEC.unpack_from(data)
                        rx_real = sec * 1_000_000_000 + nsec
                    elif kind == _SO_RXQ_OVFL and len(data) >= _UINT.size:
                        self.drops = max(self.drops, _UINT.unpack_from(data)[0])
                elif kind in (_IP_TTL, socket.IPV6_HOPLIMIT) and len(data) >= _INT.size:
                    hop = _INT.unpack_from(data)[0]
            offset = (buffer[0] & 0x0F) * 4 if self.ip_header and size else 0
            if size < offset + 8 or buffer[offset] != self.reply_type:
                continue
            ident, seq = _ID_SEQ.unpack_from(buffer, offset + 4)
            entry = table.get((ident, seq))
            if entry is None:
                self.unmatched += 1
                continue
            exchange, index = entry
            source: str = address[0]
            if self.family == socket.AF_INET6 and "%" in source:
                source = source.partition("%")[0]
            start = offset + 8
            nonce = exchange.nonce
            if (
                source != exchange.ip
                or size - start < len(nonce)
                or buffer[start : start + len(nonce)] != nonce
            ):
                self.unmatched += 1
                continue
            exchange.reply(index, rx_real, time.monotonic_ns(), hop)

    def in_flight(self) -> int:
        return len(self._table)

    def close(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.sock.fileno())
            loop.remove_writer(self.sock.fileno())
        self._loop = None
        self.sock.close()


def _read_ping_group_range() -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", encoding="utf-8") as f:
            return " ".join(f.read().split())
    except OSError:
        return "unknown"


def grant_message() -> str:
    """Exactly what this process lacks for ICMP, and how to grant it."""
    gid = os.getegid()
    return (
        f"no permission to open ICMP sockets: unprivileged datagram ICMP needs group {gid} "
        f'inside net.ipv4.ping_group_range (now "{_read_ping_group_range()}"; grant with '
        f'sysctl -w net.ipv4.ping_group_range="{gid} {gid}"), and raw ICMP needs the '
        "CAP_NET_RAW capability (e.g. AmbientCapabilities=CAP_NET_RAW in a systemd unit, "
        "--cap-add=NET_RAW for a container, or setcap cap_net_raw+ep on "
        f"{os.path.realpath(sys.executable)}); restart the exporter after granting either"
    )


def _open(family: socket.AddressFamily, mode: str, source: str | None) -> socket.socket:
    kind = socket.SOCK_DGRAM if mode == DATAGRAM else socket.SOCK_RAW
    sock = socket.socket(family, kind, _PROTO[family])
    try:
        sock.setblocking(False)
        _set_buffer(sock, socket.SO_RCVBUF, _SO_RCVBUFFORCE)
        _set_buffer(sock, socket.SO_SNDBUF, _SO_SNDBUFFORCE)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        if mode == RAW and family == socket.AF_INET:
            # Let only echo replies into the queue (bit set = type filtered out).
            sock.setsockopt(_SOL_RAW, _ICMP_FILTER, _UINT.pack(0xFFFFFFFF & ~1))
        elif mode == RAW:
            words = [0xFFFFFFFF] * 8
            words[129 >> 5] &= ~(1 << (129 & 31))
            sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("@8I", *words))
        else:
            sock.bind((source or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _set_buffer(sock: socket.socket, option: int, force: int) -> None:
    """A large buffer absorbs bursts of replies; beyond net.core.*mem_max needs privilege."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER_BYTES)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER_BYTES)


class IcmpSockets:
    """The process's ICMP sockets: the mode detected once per family, each socket opened once."""

    def __init__(self) -> None:
        self._modes: dict[socket.AddressFamily, SocketMode] = {}
        self._endpoints: dict[tuple[socket.AddressFamily, str | None], Endpoint] = {}

    def mode(self, family: socket.AddressFamily) -> SocketMode:
        """Which socket type this process may open for `family`; detected and logged once."""
        known = self._modes.get(family)
        if known is None:
            known = self._modes[family] = _detect(family)
            name = FAMILY_NAMES[family]
            if known.mode == NONE:
                logger.warning(
                    "ICMP probes cannot run", extra=fields(ip_protocol=name, err=known.problem)
                )
            else:
                logger.info("ICMP socket mode", extra=fields(ip_protocol=name, mode=known.mode))
        return known

    def endpoint(self, family: socket.AddressFamily, source: str | None = None) -> Endpoint:
        """The shared socket for `family`, opened on first use; IcmpUnavailable if none.

        Every probe of a family shares one socket and picks its source address per packet.
        The exception: Linux ignores the source of IPv6 datagram ICMP sockets' IPV6_PKTINFO,
        so there each source_ip_address gets its own bound (and equally shared) socket;
        the kernel demultiplexes datagram sockets, so that costs no packet copies.
        """
        mode = self.mode(family)
        bind = source if mode.mode == DATAGRAM and family == socket.AF_INET6 else None
        endpoint = self._endpoints.get((family, bind))
        if endpoint is not None:
            return endpoint
        if mode.mode == NONE:
            raise IcmpUnavailable(mode.problem, mode.permission)
        try:
            sock = _open(family, mode.mode, bind)
        except OSError as exc:
            where = f" bound to {bind}" if bind else ""
            raise IcmpUnavailable(
                f"cannot open the {mode.mode} ICMP socket{where}: {exc.strerror or exc}",
                exc.errno in _PERMISSION_ERRNOS,
            ) from None
        endpoint = self._endpoints[(family, bind)] = Endpoint(family, mode.mode, sock, bind)
        logger.debug(
            "Opened shared ICMP socket",
            extra=fields(
                ip_protocol=FAMILY_NAMES[family],
                mode=mode.mode,
                source=bind or "any",
                receive_buffer=sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            ),
        )
        return endpoint

    def endpoints(self) -> Iterator[Endpoint]:
        return iter(list(self._endpoints.values()))

    def close(self) -> None:
        """Close the sockets (at exit, and in tests); the next probe reopens them."""
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._endpoints.clear()


def _detect(family: socket.AddressFamily) -> SocketMode:
    errors: list[OSError] = []
    for mode, kind in ((DATAGRAM, socket.SOCK_DGRAM), (RAW, socket.SOCK_RAW)):
        try:
            socket.socket(family, kind, _PROTO[family]).close()
        except OSError as exc:
            errors.append(exc)
        else:
            return SocketMode(family, mode)
    if all(exc.errno in _PERMISSION_ERRNOS for exc in errors):
        return SocketMode(family, NONE, grant_message(), permission=True)
    detail = "; ".join(
        f"{m}: {e.strerror or e}" for m, e in zip((DATAGRAM, RAW), errors, strict=True)
    )
    return SocketMode(
        family, NONE, f"{FAMILY_NAMES[family]} ICMP sockets are not available ({detail})"
    )


SOCKETS = IcmpSockets()
atexit.register(SOCKETS.close)


class IcmpSocketCollector(Collector):
    """/metrics: the socket mode per family, and what the shared sockets dropped or ignored.

    Creating it detects the modes, so the exporter logs them once at startup.
    """

    def __init__(self, sockets: IcmpSockets = SOCKETS) -> None:
        self._sockets = sockets
        for family in FAMILY_NAMES:
            sockets.mode(family)

    def collect(self) -> Iterable[Metric]:
        mode = GaugeMetricFamily(
            "sonde_icmp_socket_mode",
            "ICMP socket type used for each IP protocol: datagram (unprivileged), raw, "
            "or none (ICMP probes fail with icmp_permission)",
            labels=("ip_protocol", "mode"),
        )
        for family, name in FAMILY_NAMES.items():
            mode.add_metric((name, self._sockets.mode(family).mode), 1)
        drops = CounterMetricFamily(
            "sonde_icmp_receive_drops",
            "Packets the kernel dropped because a shared ICMP socket's receive buffer was full",
            labels=("ip_protocol",),
        )
        unmatched = CounterMetricFamily(
            "sonde_icmp_unmatched_replies",
            "Echo replies that matched no running probe (late, foreign or forged)",
            labels=("ip_protocol",),
        )
        totals: dict[str, tuple[int, int]] = {}
        for endpoint in self._sockets.endpoints():
            name = FAMILY_NAMES[endpoint.family]
            dropped, ignored = totals.get(name, (0, 0))
            totals[name] = (dropped + endpoint.drops, ignored + endpoint.unmatched)
        for name, (dropped, ignored) in totals.items():
            drops.add_metric((name,), dropped)
            unmatched.add_metric((name,), ignored)
        return [mode, drops, unmatched]
