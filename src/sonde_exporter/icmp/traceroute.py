"""Traceroute: echo requests with TTL (hop limit) 1..max_hops, all at once, on the shared socket.

Why in parallel: a failing probe has little time left, and a router that does not answer
would cost a sequential sweep its whole wait; sent together, the sweep takes about the
slowest answer (or the budget when a hop stays silent).

Why echo requests: they go out on the shared ICMP socket like the echo probes' (raw or
datagram, see time_exceeded.py for how the routers' Time Exceeded come back), so no other
privilege is needed. A request whose TTL runs out at router k comes back as Time Exceeded from
k; one that reaches the target comes back as its echo reply, which ends the path: the lowest
TTL that reached the target is the target's hop, and the requests beyond it are dropped.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from .endpoint import Endpoint, SocketMode
from .exchange import EchoExchange
from .packets import send_options
from .sockets import SOCKETS, IcmpUnavailable

PAYLOAD_SIZE = 32
"""Bytes after the ICMP header: the nonce that proves the target's reply, and some fill."""
DEFAULT_PER_HOP_TIMEOUT = 1.0
"""How long a hop may take to answer (and so the sweep), when the deadline allows."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One answering hop: its TTL (1 = first router), its address and the round trip."""

    ttl: int
    address: str
    rtt: float
    """Seconds from sending the request to the kernel's receive stamp of the answer."""


@dataclass(frozen=True, slots=True)
class Traceroute:
    """The path to `target` as one sweep saw it, or why no sweep could run (`error`)."""

    target: str
    hops: tuple[Hop | None, ...]
    """Hops 1..n up to the target (when reached) or the last hop that answered; None = silent."""
    reached: bool
    """The target answered; then the last hop is the target."""
    max_hops: int
    sent: int
    """Requests sent: 0 when the sweep could not start."""
    started: float
    """Wall-clock time (time.time()) the sweep started."""
    duration: float
    mode: SocketMode
    error: str | None = None


class TraceExchange(EchoExchange):
    """The requests of one sweep (index i has TTL i + 1) and the answers routed to them."""

    __slots__ = ("reached_at", "routers")

    def __init__(self, endpoint: Endpoint, ip: str, max_hops: int) -> None:
        super().__init__(endpoint, ip, max_hops, PAYLOAD_SIZE)
        self.routers: list[str | None] = [None] * max_hops
        self.reached_at: int | None = None
        """The lowest index the target answered."""

    def reply(self, index: int, rx_real: int, now_mono: int, hop_limit: int | None) -> None:
        """The target's echo reply: request `index` went all the way."""
        if self.reached_at is None or index < self.reached_at:
            self.reached_at = index
        self._answer(index, rx_real, now_mono, self.ip)

    def expired(self, index: int, rx_real: int, now_mono: int, router: str) -> None:
        self._answer(index, rx_real, now_mono, router)

    def _answer(self, index: int, rx_real: int, now_mono: int, address: str) -> None:
        if self.rtt_ns[index] is not None:
            self.duplicates += 1
            return
        self.rtt_ns[index] = self.measure(index, rx_real, now_mono)
        self.routers[index] = address
        self.received += 1
        self.wake()

    def complete(self) -> bool:
        """Every hop up to the target answered (or every request sent, if none reached it)."""
        end = self.reached_at
        if end is None:
            return self.received >= self.sent
        return all(rtt is not None for rtt in self.rtt_ns[:end])

    def hops(self) -> tuple[Hop | None, ...]:
        end = self.count if self.reached_at is None else self.reached_at + 1
        hops: list[Hop | None] = []
        for index in range(end):
            rtt, router = self.rtt_ns[index], self.routers[index]
            hops.append(
                None if rtt is None or router is None else Hop(index + 1, router, rtt / 1e9)
            )
        while hops and hops[-1] is None:
            hops.pop()
        return tuple(hops)


async def traceroute(
    ip: str,
    *,
    max_hops: int,
    deadline: float,
    source: str | None = None,
    per_hop_timeout: float = DEFAULT_PER_HOP_TIMEOUT,
) -> Traceroute:
    """Sweep TTL 1..max_hops toward `ip` until the event-loop time `deadline` at the latest.

    It never raises for what stops a sweep (no ICMP socket, a refused socket option or
    send): the result's `error` says what and why.
    """
    loop = asyncio.get_running_loop()
    started, start = time.time(), loop.time()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    mode = SOCKETS.support(family).mode

    def result(
        exchange: TraceExchange | None = None, error: str | None = None, target: str = ip
    ) -> Traceroute:
        hops = exchange.hops() if exchange is not None else ()
        reached = exchange is not None and exchange.reached_at is not None
        sent = exchange.sent if exchange is not None else 0
        duration = loop.time() - start
        return Traceroute(target, hops, reached, max_hops, sent, started, duration, mode, error)

    bare, percent, scope = ip.partition("%")
    try:
        target = socket.inet_ntop(family, socket.inet_pton(family, bare)) + percent + scope
    except OSError:
        return result(error=f"traceroute target {ip!r} is not an IP address")
    if source is not None and (":" in source) != (family == socket.AF_INET6):
        return result(
            error=f"source address {source} is not of the target's IP version", target=target
        )
    until = min(deadline, start + per_hop_timeout)
    if until <= start:
        return result(error="no time left before the probe's deadline", target=target)
    try:
        endpoint = SOCKETS.endpoint(family, source)
        endpoint.open_intake()
    except IcmpUnavailable as exc:
        return result(error=f"traceroute cannot run: {exc.message}", target=target)
    except OSError as exc:
        if mode is SocketMode.RAW:
            option = "ICMP_FILTER" if family == socket.AF_INET else "ICMP6_FILTER"
        else:
            option = "IP_RECVERR" if family == socket.AF_INET else "IPV6_RECVERR"
        return result(
            error=f"traceroute cannot run: the {mode} ICMP socket refuses {option} "
            f"({exc.strerror or exc}), so no Time Exceeded can be read",
            target=target,
        )
    try:
        endpoint.attach()
        with TraceExchange(endpoint, target, max_hops) as exchange:
            error = await _send_all(exchange, endpoint, target, source)
            await exchange.wait(until)
            return result(exchange, error, target)
    finally:
        endpoint.close_intake()


async def _send_all(
    exchange: TraceExchange, endpoint: Endpoint, target: str, source: str | None
) -> str | None:
    """Send the requests with TTL 1..max_hops; the error that stopped it, if any."""
    family = endpoint.family
    per_packet_source = None if endpoint.bound_source else source
    for index in range(exchange.count):
        try:
            options, _ = send_options(family, index + 1, per_packet_source, False)
            await exchange.send(index, (target, 0), options, False)
        except OSError as exc:
            return (
                f"cannot send the request with TTL {index + 1} to {target}: {exc.strerror or exc}"
            )
    return None
