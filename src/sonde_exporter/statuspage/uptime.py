"""Uptime of every monitor for /status without reading 30 days of roll-ups per request.

The roll-ups of hours before the previous one no longer change (a result lands in the hour
its check started, seconds before it is written), so their sums are kept in memory, computed
once an hour in the background; each request adds only the previous and current hours, read
by primary key per monitor. While the hourly recomputation runs, the old sums serve and the
windows are up to an hour longer at their far end. Pruned roll-ups leave at the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ..logs import fields
from ..storage import MonitorStore, StorageUnavailable
from ..storage.records import HOUR, UPTIME_WINDOWS, Sums

logger = logging.getLogger("sonde_exporter.statuspage")
NO_CHECKS: Sums = (0,) * (2 * len(UPTIME_WINDOWS))


@dataclass(frozen=True, slots=True)
class Settled:
    """The sums of the hours up to `hour` - 2 for the windows that end with `hour`."""

    hour: int
    sums: dict[int, Sums]

    def with_recent(self, recent: Mapping[int, tuple[int, int]]) -> dict[int, Sums]:
        """The settled sums plus `recent`: the checks and checks up from `hour` - 1 on."""
        combined = {}
        for key in self.sums.keys() | recent.keys():
            base = self.sums.get(key, NO_CHECKS)
            checks, up = recent.get(key, (0, 0))
            combined[key] = tuple(v + (checks if i % 2 == 0 else up) for i, v in enumerate(base))
        return combined


class UptimeCache:
    def __init__(self, store: MonitorStore) -> None:
        self.store = store
        self.settled: Settled | None = None
        self._refresh: asyncio.Task[None] | None = None

    def refresh_soon(self, now: float) -> None:
        """Start computing the settled sums for this hour unless they are (being) computed."""
        hour = int(now // HOUR)
        if self._refresh is None and (self.settled is None or self.settled.hour != hour):
            self._refresh = asyncio.create_task(self._compute(hour), name="sonde-uptime")
            self._refresh.add_done_callback(self._refreshed)

    async def current(self, now: float) -> Settled:
        """The settled sums. Only the very first call waits for them; when the hour turns the
        old ones serve while the new ones are computed in the background."""
        self.refresh_soon(now)
        if self.settled is None and self._refresh is not None:
            await asyncio.shield(self._refresh)
        if self.settled is None:
            raise StorageUnavailable("the uptime sums could not be read")
        return self.settled

    async def _compute(self, hour: int) -> None:
        sums = await self.store.uptime_sums(hour, before=hour - 1)
        self.settled = Settled(hour, sums)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        self._refresh = None
        if not task.cancelled() and isinstance(task.exception(), StorageUnavailable):
            logger.warning(
                "Cannot refresh the uptime sums", extra=fields(err=str(task.exception()))
            )

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
