"""Time Exceeded messages: letting them in while a traceroute runs, and reading them.

Why only while a traceroute runs: a raw socket gets a copy of every ICMP message of the host
that its filter lets through, and a datagram socket with IP_RECVERR reports every ICMP error
about its packets on the error queue (and once more as a pending socket error). Echo probes
need neither, so the endpoint widens the intake when its first traceroute starts and narrows
it when its last one ends (which also empties the error queue).

Two ways in, one result (identifier, sequence, router address):
- raw sockets receive the Time Exceeded message itself; it quotes the original IP header and
  the first 8 bytes of the echo request, so its identifier and sequence;
- datagram sockets read it from the error queue (MSG_ERRQUEUE): the data is the quoted echo
  request from its ICMP header on, the address is the quoted destination, and the router is
  the offender address after the sock_extended_err control message (SO_EE_OFFENDER).
"""

from __future__ import annotations

import socket
import struct

from . import linux

TIME_EXCEEDED = {socket.AF_INET: 11, socket.AF_INET6: 3}
_ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
_RECVERR = {
    socket.AF_INET: (socket.IPPROTO_IP, linux.IP_RECVERR),
    socket.AF_INET6: (socket.IPPROTO_IPV6, linux.IPV6_RECVERR),
}
_ORIGIN = {socket.AF_INET: linux.SO_EE_ORIGIN_ICMP, socket.AF_INET6: linux.SO_EE_ORIGIN_ICMP6}
_EXTENDED_ERR = struct.Struct("=IBBBBII")
"""struct sock_extended_err: errno, origin, type, code, pad, info, data."""
_ID_SEQ = struct.Struct("!HH")
ERROR_ANCILLARY_SIZE = 256
"""Room for the extended error with its offender address, a timestamp and a TTL."""


def set_filter(sock: socket.socket, family: socket.AddressFamily, time_exceeded: bool) -> None:
    """Raw sockets: let only echo replies in, and Time Exceeded too when asked."""
    allowed = [_ECHO_REPLY[family]]
    if time_exceeded:
        allowed.append(TIME_EXCEEDED[family])
    if family == socket.AF_INET:  # bit set = type filtered out
        mask = 0xFFFFFFFF
        for kind in allowed:
            mask &= ~(1 << kind)
        sock.setsockopt(linux.SOL_RAW, linux.ICMP_FILTER, struct.pack("@I", mask))
        return
    words = [0xFFFFFFFF] * 8
    for kind in allowed:
        words[kind >> 5] &= ~(1 << (kind & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, linux.ICMP6_FILTER, struct.pack("@8I", *words))


def set_intake(sock: socket.socket, family: socket.AddressFamily, raw: bool, on: bool) -> None:
    """Widen (on) or narrow the socket's intake of Time Exceeded; OSError if refused."""
    if raw:
        set_filter(sock, family, on)
    else:
        level, option = _RECVERR[family]
        sock.setsockopt(level, option, int(on))


def parse_raw(
    buffer: bytearray, size: int, ip_header: bool, family: socket.AddressFamily, request_type: int
) -> tuple[int, int, str] | None:
    """(identifier, sequence, quoted destination) of a Time Exceeded about an echo request."""
    offset = (buffer[0] & 0x0F) * 4 if ip_header and size else 0
    if size < offset + 8 or buffer[offset] != TIME_EXCEEDED[family] or buffer[offset + 1]:
        return None
    quoted = offset + 8
    if family == socket.AF_INET:
        if size < quoted + 20 or buffer[quoted] >> 4 != 4 or buffer[quoted + 9] != 1:
            return None
        inner = quoted + (buffer[quoted] & 0x0F) * 4
        destination = bytes(buffer[quoted + 16 : quoted + 20])
    else:
        if size < quoted + 40 or buffer[quoted] >> 4 != 6 or buffer[quoted + 6] != 58:
            return None
        inner = quoted + 40
        destination = bytes(buffer[quoted + 24 : quoted + 40])
    if size < inner + 8 or buffer[inner] != request_type:
        return None
    ident, seq = _ID_SEQ.unpack_from(buffer, inner + 4)
    return ident, seq, socket.inet_ntop(family, destination)


def parse_queued(
    buffer: bytearray,
    size: int,
    ancdata: list[tuple[int, int, bytes]],
    family: socket.AddressFamily,
    request_type: int,
) -> tuple[int, int, str] | None:
    """(identifier, sequence, router) of a Time Exceeded read from the error queue."""
    if size < 8 or buffer[0] != request_type:
        return None
    level, option = _RECVERR[family]
    for cmsg_level, cmsg_type, data in ancdata:
        if (cmsg_level, cmsg_type) != (level, option) or len(data) < _EXTENDED_ERR.size + 8:
            continue
        _errno, origin, kind, code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(data)
        if origin != _ORIGIN[family] or kind != TIME_EXCEEDED[family] or code:
            return None
        offender = _EXTENDED_ERR.size
        if family == socket.AF_INET:
            router = socket.inet_ntop(family, data[offender + 4 : offender + 8])
        elif len(data) >= offender + 24:
            router = socket.inet_ntop(family, data[offender + 8 : offender + 24])
        else:
            return None
        ident, seq = _ID_SEQ.unpack_from(buffer, 4)
        return ident, seq, router
    return None
