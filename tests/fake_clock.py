"""Virtual time for the scheduler's tests: a Clock (monitors/clock.py) that never waits.

Time stands still until a test moves it. `advance` walks it forward to each pending deadline
in order, wakes what waits there and lets the event loop settle before going on, so what
runs, when, and in what order is the same on every run, whatever the box's load. `hold`
moves time without waking anything: an event loop held up by something else.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

SETTLE_TURNS = 50
"""Turns of the event loop that let everything woken at one instant run until it waits again.
Each hop (a timer to the scheduler's loop, to a new check task, to its semaphore, to its
first await) takes one turn; the longest chain in the scheduler is under ten."""


class FakeClock:
    def __init__(self, now: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._now = now
        self._wall_offset = wall - now
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def to_wall(self, now: float) -> float:
        return now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        """What a fake check awaits: `seconds` of virtual time."""
        await self._until(self._now + seconds)

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        if wake.is_set():
            return
        timer = asyncio.ensure_future(self._until(deadline))
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({timer, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            woken.cancel()

    async def _until(self, deadline: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (deadline, next(self._order), future))
        await future

    async def settle(self) -> None:
        for _ in range(SETTLE_TURNS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move `seconds` forward, stopping at every deadline on the way (on time)."""
        end = self._now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= end:
            deadline, _, future = heapq.heappop(self._timers)
            if future.done():  # its waiter was cancelled or woken otherwise
                continue
            self._now = max(self._now, deadline)
            future.set_result(None)
            await self.settle()
        self._now = end
        await self.settle()

    def hold(self, seconds: float) -> None:
        """Move time on with nothing woken: the loop was busy (the next advance wakes all
        that fell due meanwhile, late)."""
        self._now += seconds
