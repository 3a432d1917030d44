"""Token buckets: exporter-toolkit's global `rate_limit`, and sonde-exporter's per-client one.

A bucket holds up to `burst` tokens and gets one back every `interval`; a request takes one
or is refused (429). Go's rate.Limiter behaves the same way, starting full.
"""

from __future__ import annotations

from collections import OrderedDict

from .model import RateLimit

MAX_CLIENTS = 10_000
"""Buckets kept for distinct client addresses; the least recently seen one is forgotten first
(a forgotten client starts again with a full bucket; the global bucket still holds)."""


class TokenBucket:
    __slots__ = ("_burst", "_per_second", "_stamp", "_tokens")

    def __init__(self, interval: float, burst: int, now: float) -> None:
        self._per_second = 1 / interval
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def ready(self, now: float) -> bool:
        """Whether a token is there now (refilled for the time since the last look)."""
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._per_second)
        self._stamp = now
        return self._tokens >= 1

    def take(self) -> None:
        self._tokens -= 1


class RateLimiter:
    def __init__(self, limits: RateLimit, now: float) -> None:
        self.limits = limits
        self._global = (
            TokenBucket(limits.interval, limits.burst, now) if limits.interval > 0 else None
        )
        self._clients: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, client: str | None, now: float) -> bool:
        """Take a token from the client's bucket and the global one, or from neither."""
        buckets = [] if self._global is None else [self._global]
        per_client = self.limits.per_client
        if per_client is not None:
            bucket = self._clients.pop(client or "", None)
            if bucket is None:
                bucket = TokenBucket(per_client.interval, per_client.burst, now)
                if len(self._clients) >= MAX_CLIENTS:
                    self._clients.popitem(last=False)
            self._clients[client or ""] = bucket  # now the most recently seen
            buckets.append(bucket)
        if not all([bucket.ready(now) for bucket in buckets]):
            return False
        for bucket in buckets:
            bucket.take()
        return True
