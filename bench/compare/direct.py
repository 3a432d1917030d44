"""The ground truth: the sampler that measures what an exporter reports, at the same moment.

In its own process (so the load's event loop cannot delay it), at a fixed `--rate` for
`--seconds`, it times either a blocking TCP `connect()` (`tcp:HOST:PORT`) or one ICMP echo
(`icmp:HOST`) with perf_counter, and prints one JSON line: the kind, the failures, and
n/p50/p90/p99/max/mean in ms. ICMP uses a datagram socket where ping_group_range allows it,
else a raw one with an 8 MiB receive buffer (a raw socket gets a copy of every ICMP packet of
the box, and must not lose our reply to other people's pings). Loopback targets only.

    python -m bench.compare.direct tcp:127.0.0.1:8000 --rate 50 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Callable

from .loopback import loopback_address, target_host
from .stats import summary_ms

ECHO_TIMEOUT = 2.0
RAW_BUFFER = 8 << 20
SO_RCVBUFFORCE = 33  # Linux: SO_RCVBUF beyond rmem_max, for root; Python does not name it


def connect_once(host: str, port: int) -> float | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        began = time.perf_counter()
        try:
            sock.connect((host, port))
        except OSError:
            return None
        return time.perf_counter() - began


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of an ICMPv4 message."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Echo:
    """One ICMPv4 socket and the echo requests sent through it, matched by sequence."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0
        try:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
            self.kind = "dgram"
        except PermissionError:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            self.kind = "raw"
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RAW_BUFFER)

    def once(self) -> float | None:
        self.seq = (self.seq + 1) & 0xFFFF
        payload = b"sonde-bench-direct"
        header = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq)
        header = struct.pack("!BBHHH", 8, 0, checksum(header + payload), self.ident, self.seq)
        began = time.perf_counter()
        self.sock.sendto(header + payload, (self.host, 0))
        deadline = began + ECHO_TIMEOUT
        while (left := deadline - time.perf_counter()) > 0:
            self.sock.settimeout(left)
            try:
                packet = self.sock.recv(2048)
            except TimeoutError:
                return None
            arrived = time.perf_counter()
            if self.kind == "raw":  # raw sockets see the IP header; datagram ones do not
                packet = packet[(packet[0] & 0x0F) * 4 :]
            if len(packet) < 8:
                continue
            kind, _, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
            # a datagram socket's id is the kernel's choice, so only raw replies match on it
            if kind == 0 and seq == self.seq and (self.kind == "dgram" or ident == self.ident):
                return arrived - began
        return None


def sampler(spec: str) -> tuple[str, Callable[[], float | None]]:
    """(kind, one measurement) for `tcp:HOST:PORT` or `icmp:HOST`; ValueError otherwise."""
    kind, _, rest = spec.partition(":")
    if kind == "tcp":
        host = target_host(rest)
        port = int(rest.rpartition(":")[2])
        loopback_address(host)
        return "tcp", lambda: connect_once(host, port)
    if kind == "icmp":
        if loopback_address(rest).version != 4:
            raise ValueError("icmp: IPv4 loopback addresses only")
        echo = Echo(rest)
        return f"icmp/{echo.kind}", echo.once
    raise ValueError(f"expected tcp:HOST:PORT or icmp:HOST, not {spec!r}")


def run(spec: str, rate: float, seconds: float) -> dict[str, object]:
    kind, measure = sampler(spec)
    values: list[float] = []
    fails = 0
    period = 1 / rate
    began = time.perf_counter()
    for n in range(int(rate * seconds)):
        value = measure()
        if value is None:
            fails += 1
        else:
            values.append(value)
        # a fixed schedule; a late sample is not made up for by a burst
        time.sleep(max(0.0, began + (n + 1) * period - time.perf_counter()))
    return {"kind": kind, "fails": fails, "ms": summary_ms(values)}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("spec", help="tcp:HOST:PORT or icmp:HOST")
    p.add_argument("--rate", type=float, default=50.0, help="measurements per second (1..1000)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long (at most 3600)")
    args = p.parse_args()
    if not (1 <= args.rate <= 1000 and 0 < args.seconds <= 3600):
        p.error("--rate must be 1..1000 and --seconds 0..3600")
    try:
        result = run(args.spec, args.rate, args.seconds)
    except ValueError as exc:
        print(f"direct: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
