"""The network side of the ICMP tests; runs inside a network namespace the test created.

    python icmp_netns_tools.py responder SPEC_JSON
        Creates a TUN device and answers ICMP echo requests for the addresses in SPEC with
        a configured delay (cycled per request), drop pattern, duplicates, forged replies
        or silence. Per address it records what it saw (TTL / hop limit, source, size).
        An address with "routers" sits behind that chain of routers: a request whose TTL
        (hop limit) runs out at hop k gets a Time Exceeded from the k-th router after
        k * hop_delay_ms, quoting the request's IP header and first 8 ICMP bytes as real
        routers do, unless hop k is listed in "mute_hops"; the rest reach the address.
    python icmp_netns_tools.py forger
        Watches echo requests on loopback with a raw socket and answers each with two
        forged replies carrying the same identifier and sequence: one from a wrong source
        address, one with a corrupted payload.

Both print "ready" once set up, run until their stdin closes, then print a JSON summary.
They run as root with SCHED_FIFO, so their timing does not depend on the machine's load.
"""

from __future__ import annotations

import fcntl
import heapq
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
WRONG_SOURCE_V4 = "127.0.0.254"


def checksum(data: bytes) -> int:
    """RFC 1071, written plainly (the exporter's own version is the one under test)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def realtime() -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except OSError:
        os.nice(-10)


def ipv4_packet(src: bytes, dst: bytes, ttl: int, icmp: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, ttl, 1, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + icmp


def icmp4(kind: int, rest: bytes) -> bytes:
    body = struct.pack("!BBH", kind, 0, 0) + rest
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def ipv6_packet(src: bytes, dst: bytes, hop: int, kind: int, rest: bytes) -> bytes:
    body = struct.pack("!BBH", kind, 0, 0) + rest
    pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    return struct.pack("!IHBB", 0x60000000, len(body), 58, hop) + src + dst + body


@dataclass
class Host:
    """How one address behaves, and what it saw."""

    delays_ms: list[float] = field(default_factory=lambda: [0.0])
    drop_every: int = 0
    duplicate_every: int = 0
    silent: bool = False
    forge: bool = False
    ttl: int = 64
    routers: list[str] = field(default_factory=list)
    hop_delay_ms: float = 0.0
    mute_hops: list[int] = field(default_factory=list)
    requests: int = 0
    expired: int = 0
    time_exceeded: int = 0
    dropped: int = 0
    duplicated: int = 0
    replies: int = 0
    """Packets written back for this address: echo replies and its routers' Time Exceeded."""
    forged: int = 0
    request_ttls: set[int] = field(default_factory=set)
    request_sources: set[str] = field(default_factory=set)
    payload_sizes: set[int] = field(default_factory=set)
    max_late_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "replies": self.replies,
            "forged": self.forged,
            "expired": self.expired,
            "time_exceeded": self.time_exceeded,
            "request_ttls": sorted(self.request_ttls),
            "request_sources": sorted(self.request_sources),
            "payload_sizes": sorted(self.payload_sizes),
            "max_late_ms": self.max_late_ms,
        }


def responder(spec: dict[str, Any]) -> None:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", spec["interface"].encode(), IFF_TUN | IFF_NO_PI))
    hosts = {
        ipaddress.ip_address(address).packed: Host(**options)
        for address, options in spec["hosts"].items()
    }
    realtime()
    print("ready", flush=True)
    queue: list[tuple[float, int, bytes, Host | None]] = []
    order = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([fd, 0], [], [], timeout)
        if 0 in readable and not os.read(0, 4096):
            break
        if fd in readable:
            # Read (and stamp) every queued request first: a burst of requests must not
            # wait in the device while the earlier ones are answered.
            arrived: list[tuple[float, bytes]] = []
            while True:
                try:
                    arrived.append((time.monotonic(), os.read(fd, 65536)))
                except BlockingIOError:
                    break
            for now, packet in arrived:
                for due, reply, host in _answers(packet, hosts, now):
                    order += 1
                    heapq.heappush(queue, (due, order, reply, host))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            due, _, reply, host = heapq.heappop(queue)
            os.write(fd, reply)
            if host is not None:
                host.replies += 1
                host.max_late_ms = max(host.max_late_ms, (time.monotonic() - due) * 1000)
    print(json.dumps({ipaddress.ip_address(a).compressed: h.summary() for a, h in hosts.items()}))


def _answers(
    packet: bytes, hosts: dict[bytes, Host], now: float
) -> list[tuple[float, bytes, Host | None]]:
    """The packets to write back for one packet read from the TUN device, with due times."""
    version = packet[0] >> 4
    if version == 4 and packet[9] == 1:
        if struct.unpack_from("!H", packet, 6)[0] & 0x3FFF:  # a fragment: not reassembled
            return []
        ihl = (packet[0] & 0x0F) * 4
        src, dst, ttl, icmp = packet[12:16], packet[16:20], packet[8], packet[ihl:]
        if icmp[0] != 8 or dst not in hosts:
            return []

        def build(source: bytes, rest: bytes, hop: int) -> bytes:
            return ipv4_packet(source, src, hop, icmp4(0, rest))

        def time_exceeded(router: bytes) -> bytes:
            return ipv4_packet(router, src, 64, icmp4(11, bytes(4) + packet[: ihl + 8]))

        wrong = ipaddress.ip_address("198.18.0.99").packed
    elif version == 6 and packet[6] == 58:
        src, dst, ttl, icmp = packet[8:24], packet[24:40], packet[7], packet[40:]
        if icmp[0] != 128 or dst not in hosts:
            return []

        def build(source: bytes, rest: bytes, hop: int) -> bytes:
            return ipv6_packet(source, src, hop, 129, rest)

        def time_exceeded(router: bytes) -> bytes:
            return ipv6_packet(router, src, 64, 3, bytes(4) + packet[:48])

        wrong = ipaddress.ip_address("2001:db8::99").packed
    else:
        return []
    host = hosts[dst]
    host.requests += 1
    host.request_ttls.add(ttl)
    host.request_sources.add(ipaddress.ip_address(src).compressed)
    host.payload_sizes.add(len(icmp) - 8)
    if ttl <= len(host.routers):  # expires at router `ttl` on the way
        host.expired += 1
        if ttl in host.mute_hops:
            return []
        host.time_exceeded += 1
        router = ipaddress.ip_address(host.routers[ttl - 1]).packed
        return [(now + ttl * host.hop_delay_ms / 1000, time_exceeded(router), host)]
    rest = icmp[4:]
    out: list[tuple[float, bytes, Host | None]] = []
    if host.forge:
        corrupted = rest[:4] + bytes([rest[4] ^ 0xFF]) + rest[5:]
        out.append((now, build(wrong, rest, host.ttl), None))
        out.append((now, build(dst, corrupted, host.ttl), None))
        host.forged += 2
    if host.silent:
        return out
    if host.drop_every and host.requests % host.drop_every == 0:
        host.dropped += 1
        return out
    delay = host.delays_ms[(host.requests - 1) % len(host.delays_ms)] / 1000
    reply = build(dst, rest, host.ttl)
    out.append((now + delay, reply, host))
    if host.duplicate_every and (host.requests - 1) % host.duplicate_every == 0:
        host.duplicated += 1
        out.append((now + delay, reply, host))
    return out


def forger() -> None:
    listen = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    listen.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    listen.setsockopt(255, 1, struct.pack("I", 0xFFFFFFFF & ~(1 << 8)))  # only echo requests
    listen.setblocking(False)
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    wrong = socket.inet_aton(WRONG_SOURCE_V4)
    realtime()
    print("ready", flush=True)
    forged = 0
    done = False
    while not done:
        readable, _, _ = select.select([listen, 0], [], [])
        if 0 in readable and not os.read(0, 4096):
            done = True  # answer what is queued, then stop
        while True:
            try:
                packet = listen.recv(65536)
            except BlockingIOError:
                break
            ihl = (packet[0] & 0x0F) * 4
            src, dst, icmp = packet[12:16], packet[16:20], packet[ihl:]
            if icmp[0] != 8:
                continue
            rest = icmp[4:]
            corrupted = rest[:4] + bytes([rest[4] ^ 0xFF]) + rest[5:] if len(rest) > 4 else rest
            for source, body in ((wrong, rest), (dst, corrupted)):
                send.sendto(
                    ipv4_packet(source, src, 64, icmp4(0, body)), (socket.inet_ntoa(src), 0)
                )
                forged += 1
    print(json.dumps({"forged": forged}))


if __name__ == "__main__":
    if sys.argv[1] == "responder":
        responder(json.loads(sys.argv[2]))
    else:
        forger()
