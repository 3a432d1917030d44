"""The echo requests of one probe on a shared socket, and the answers routed back to them.

Why two clocks: the kernel's receive stamp and the send stamp are both CLOCK_REALTIME; a
monotonic measurement taken around them bounds the result, so a clock step cannot produce a
wrong RTT (it falls back to the monotonic one).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Self

from .packets import NONCE_SIZE, SendOptions, echo_payload, echo_request, ones_sum

if TYPE_CHECKING:
    from .endpoint import Endpoint


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
        self.payload = echo_payload(payload_size)
        self.nonce = self.payload[:NONCE_SIZE]
        self._payload_sum = ones_sum(self.payload) if endpoint.checksummed else None
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._endpoint.release(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()

    async def send(
        self, index: int, address: tuple[str, int], options: SendOptions, toggle_df: bool
    ) -> None:
        """Send echo request `index`; OSError when the kernel refuses it."""
        endpoint = self._endpoint
        seq = endpoint.claim_seq(self, index)
        packet = echo_request(
            endpoint.request_type, self.ident, seq, self.payload, self._payload_sum
        )
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

    def measure(self, index: int, rx_real: int, now_mono: int) -> int:
        """The RTT of request `index` in ns: kernel stamps, bounded by the monotonic clock."""
        bound = now_mono - self.sent_mono[index]
        rtt = rx_real - self.sent_real[index]
        if not 0 <= rtt <= bound:  # no kernel timestamp, or the wall clock stepped
            if rx_real:
                self.clock_fallbacks += 1
            rtt = bound
        return rtt

    def reply(self, index: int, rx_real: int, now_mono: int, hop_limit: int | None) -> None:
        """Record a reply to request `index` (called by the endpoint's reader)."""
        if self.rtt_ns[index] is not None:
            self.duplicates += 1
            return
        self.rtt_ns[index] = self.measure(index, rx_real, now_mono)
        self.hop_limits[index] = hop_limit
        self.received += 1
        self.wake()

    def complete(self) -> bool:
        """Nothing more to wait for: every request sent so far has its reply."""
        return self.received >= self.sent

    def wake(self) -> None:
        """Let wait() return once complete (called after each recorded answer)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self.complete():
            waiter.set_result(None)

    def expired(self, index: int, rx_real: int, now_mono: int, router: str) -> None:
        """A router's Time Exceeded for request `index`: for an echo probe, just a loss."""

    async def wait(self, until: float) -> None:
        """Wait until complete(), or until loop time `until`."""
        if self.complete():
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout_at(until):
                await self._waiter
        except TimeoutError:
            pass
        finally:
            self._waiter = None
