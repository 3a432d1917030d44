"""Echo requests as bytes, the control messages sent with them, and replies read back.

Why by hand: a raw IPv4 socket sends the ICMP header exactly as given, so the checksum is
ours to compute (the kernel fills it in for datagram sockets and for ICMPv6), and replies
are parsed straight from the socket's receive buffer, without a copy per packet.
"""

from __future__ import annotations

import random
import socket
import struct
from functools import lru_cache

from . import linux

ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}

MAX_PAYLOAD = 65507
"""The largest echo payload that fits an IPv4 datagram (65535 - 20 - 8)."""
NONCE_SIZE = 8
"""Random bytes that open every payload, so a reply proves it answers this probe."""
RECV_BUFFER = 65536 + 64

_TIMESPEC = struct.Struct("@ll")
_INT = struct.Struct("@i")
_UINT = struct.Struct("@I")
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) + 2 * socket.CMSG_SPACE(_INT.size) + 64
"""Room for what a reply carries: its timestamp, hop limit and the drop counter."""
_ID_SEQ = struct.Struct("!HH")
_HEADER = struct.Struct("!BBHHH")
_FILL = bytes(range(256)) * (MAX_PAYLOAD // 256 + 1)

SendOptions = tuple[tuple[int, int, bytes], ...]
"""Ancillary data (level, type, data) for sendmsg."""


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


def echo_payload(size: int) -> bytes:
    """A payload of `size` bytes: a random nonce, then a fixed fill (truncated to fit)."""
    nonce = random.getrandbits(8 * NONCE_SIZE).to_bytes(NONCE_SIZE, "big")
    return (nonce + _FILL[: max(0, size - NONCE_SIZE)])[:size]


def echo_request(kind: int, ident: int, seq: int, payload: bytes, payload_sum: int | None) -> bytes:
    """The ICMP message; `payload_sum` (ones_sum of the payload) when the checksum is ours."""
    checksum = 0
    if payload_sum is not None:
        checksum = echo_checksum(kind * 256 + ident + seq, payload_sum)
    return _HEADER.pack(kind, 0, checksum, ident, seq) + payload


@lru_cache(maxsize=256)
def send_options(
    family: socket.AddressFamily, ttl: int | None, source: str | None, dont_fragment: bool
) -> tuple[SendOptions, bool]:
    """Ancillary data for every echo request of a module, built once per (module, family).

    Returns (cmsgs, toggle_df): IPv4 has no per-packet DF control message, so the shared
    socket switches IP_MTU_DISCOVER around the send instead (the event loop is single
    threaded, so no other send can slip in between).
    """
    cmsgs: list[tuple[int, int, bytes]] = []
    if family == socket.AF_INET:
        if ttl is not None:
            cmsgs.append((socket.IPPROTO_IP, linux.IP_TTL, _INT.pack(ttl)))
        if source is not None:
            spec = socket.inet_pton(socket.AF_INET, source)
            cmsgs.append((socket.IPPROTO_IP, linux.IP_PKTINFO, _INT.pack(0) + spec + bytes(4)))
        return tuple(cmsgs), dont_fragment
    if ttl is not None:
        cmsgs.append((socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, _INT.pack(ttl)))
    if source is not None:
        packed = socket.inet_pton(socket.AF_INET6, source.partition("%")[0])
        cmsgs.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, packed + _UINT.pack(0)))
    if dont_fragment:
        cmsgs.append((socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, _INT.pack(1)))
    return tuple(cmsgs), False


def read_ancillary(ancdata: list[tuple[int, int, bytes]]) -> tuple[int, int | None, int | None]:
    """(kernel receive time in wall-clock ns or 0, hop limit, socket drop count) of a packet."""
    rx_real = 0
    hop: int | None = None
    drops: int | None = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET:
            if kind == linux.SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(data)
                rx_real = sec * 1_000_000_000 + nsec
            elif kind == linux.SO_RXQ_OVFL and len(data) >= _UINT.size:
                drops = _UINT.unpack_from(data)[0]
        elif kind in (linux.IP_TTL, socket.IPV6_HOPLIMIT) and len(data) >= _INT.size:
            hop = _INT.unpack_from(data)[0]
    return rx_real, hop, drops


def parse_echo_reply(
    buffer: bytearray, size: int, ip_header: bool, reply_type: int
) -> tuple[int, int, int] | None:
    """(identifier, sequence, payload offset) of an echo reply in `buffer`, else None.

    `ip_header`: raw IPv4 sockets deliver the IP header in front of the ICMP message.
    """
    offset = (buffer[0] & 0x0F) * 4 if ip_header and size else 0
    if size < offset + 8 or buffer[offset] != reply_type:
        return None
    ident, seq = _ID_SEQ.unpack_from(buffer, offset + 4)
    return ident, seq, offset + 8
