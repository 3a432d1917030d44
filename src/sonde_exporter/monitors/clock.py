"""The scheduler's view of time, injected so that its tests run on virtual time.

Two readings: `now()`, the event loop's monotonic seconds that due times are kept in, and
`wall()`, seconds since the epoch, on which monitors' ticks are aligned (so they keep their
place across restarts). One wait: until a deadline on `now()` or until an event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds: due times and lags are measured on this."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch: ticks are aligned on this."""
        ...

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        """Return once `now()` reaches `deadline` or `wake` is set, whichever comes first."""
        ...


class LoopClock:
    """The real clock: the running event loop's time and the system's wall clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    async def wait_until(self, deadline: float, wake: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await wake.wait()
