"""At most one traceroute per target per interval: the latest one is reused until then.

Why: traceroutes run when probes fail, and a flapping or abused target would otherwise turn
every failed probe into max_hops packets. A sweep of a target (seen from one source
address) starts at most once per interval; probes asking meanwhile get the latest result,
or wait for the sweep that is running. A sweep that sent nothing (no socket, no time left)
does not count: the next probe may try. Memory stays bounded: the least recently used
targets are forgotten beyond `max_targets`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from .traceroute import DEFAULT_PER_HOP_TIMEOUT, Traceroute, traceroute

DEFAULT_MAX_TARGETS = 4096
_OWN_SWEEP_SLACK = 0.01


@dataclass(frozen=True, slots=True)
class TracerouteResult:
    """A traceroute as a probe got it: `reused` when another probe's sweep answered."""

    trace: Traceroute
    reused: bool


class TracerouteCache:
    """The latest sweep per (target, source), started at most once per `interval` seconds."""

    def __init__(self, interval: float, max_targets: int = DEFAULT_MAX_TARGETS) -> None:
        self.interval = interval
        self.max_targets = max_targets
        self._entries: OrderedDict[
            tuple[str, str | None, int], tuple[float, asyncio.Task[Traceroute]]
        ] = OrderedDict()
        self._running: set[asyncio.Task[Traceroute]] = set()
        """Strong references: a sweep goes on when the probe that started it is cancelled."""

    async def get(
        self,
        ip: str,
        *,
        max_hops: int,
        deadline: float,
        source: str | None = None,
        per_hop_timeout: float = DEFAULT_PER_HOP_TIMEOUT,
    ) -> TracerouteResult | None:
        """The latest traceroute of `ip`, starting one if none started within the interval.

        None when the sweep another probe started is still running at `deadline`; a sweep
        started here ends by `deadline` itself.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        key = (ip, source, max_hops)  # a shorter sweep cannot stand in for a longer one
        entry = self._entries.get(key)
        reused = entry is not None and now - entry[0] < self.interval
        if entry is not None and reused:
            self._entries.move_to_end(key)
            task = entry[1]
        else:
            task = loop.create_task(
                traceroute(
                    ip,
                    max_hops=max_hops,
                    deadline=deadline,
                    source=source,
                    per_hop_timeout=per_hop_timeout,
                )
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda done: self._forget_if_unsent(key, done))
            self._entries[key] = (now, task)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_targets:
                self._entries.popitem(last=False)
        if not task.done():
            # A sweep ends by the deadline it was started with; the wait is capped anyway, so
            # a send that hangs cannot hold the probe (own sweeps get a moment to finish).
            cap = max(0.0, deadline - loop.time()) + (0.0 if reused else _OWN_SWEEP_SLACK)
            done, _ = await asyncio.wait({task}, timeout=cap)
            if not done:
                return None
        if task.cancelled():
            return None
        return TracerouteResult(task.result(), reused)  # a sweep's bug raises here

    def _forget_if_unsent(
        self, key: tuple[str, str | None, int], task: asyncio.Task[Traceroute]
    ) -> None:
        entry = self._entries.get(key)
        if entry is None or entry[1] is not task:
            return
        if task.cancelled() or task.exception() is not None or task.result().sent == 0:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
