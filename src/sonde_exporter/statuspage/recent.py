"""The newest checks of every monitor for /status's sparklines, kept in memory.

The first request reads each monitor's newest checks (one index range per monitor); later
ones read only the results written since (one range of the results' primary key) and append
them. Each monitor's newest kept check is compared with the engine's last check: a monitor
that disagrees (its results deleted, a row number reused) is read again on its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Mapping

from ..storage import MonitorStore
from ..storage.records import Check
from ..storage.store import StatusChanges

TOP_UP_LIMIT = 100_000
"""More new results than this since the last request: read every monitor again instead."""


class RecentChecks:
    def __init__(self, points: int) -> None:
        self.points = points
        self._checks: dict[int, deque[Check]] = {}
        self._seq: int | None = None
        self._lock = asyncio.Lock()
        """One request at a time reads and appends: two would append the same new rows."""

    async def read(
        self, store: MonitorStore, since_hour: int, expected: Mapping[str, float]
    ) -> tuple[StatusChanges, dict[int, deque[Check]]]:
        """What /status reads (see StatusChanges) and the kept checks brought up to date.
        `expected`: each monitor's last check time as the engine knows it (absent: never
        checked)."""
        async with self._lock:
            changes = await store.status_changes(since_hour, self._seq, TOP_UP_LIMIT)
            if changes.checks is None:
                self._checks = {}
                await self._load(store, changes.keys.values(), changes.newest)
            else:
                self._top_up(changes.checks)
            self._seq = changes.newest
            stale = []
            for monitor_id, key in changes.keys.items():
                kept = self._checks.get(key)
                if (kept[-1].checked_at if kept else None) != expected.get(monitor_id):
                    stale.append(key)
            if stale:
                await self._load(store, stale, changes.newest)
            return changes, self._checks

    async def _load(self, store: MonitorStore, keys: Collection[int], up_to: int) -> None:
        """Read again the newest checks of `keys`, up to the row read last (the next request
        appends what came after it)."""
        loaded = await store.recent_checks(keys, self.points, up_to)
        for key, newest_first in loaded.items():
            self._checks[key] = deque(reversed(newest_first), maxlen=self.points)

    def _top_up(self, rows: list[tuple[int, Check]]) -> None:
        for key, check in rows:
            kept = self._checks.get(key)
            if kept is None:
                kept = self._checks[key] = deque(maxlen=self.points)
            kept.append(check)
