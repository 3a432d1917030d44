"""The newest checks of every monitor for /status's sparklines, kept in memory.

The first request reads each monitor's newest checks (one index range per monitor); later
ones read only the results written since (one range of the results' primary key) and append
them. Each monitor's newest kept check is compared with the engine's last check: a monitor
that disagrees (its results deleted, a row number reused) is read again on its own.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Mapping

from ..storage.status_rows import Check, checks_since, max_seq, recent_checks

TOP_UP_LIMIT = 100_000
"""More new results than this since the last request: read every monitor again instead."""


class RecentChecks:
    def __init__(self, points: int) -> None:
        self.points = points
        self._checks: dict[int, deque[Check]] = {}
        self._seq: int | None = None

    def read(
        self, conn: sqlite3.Connection, keys: Mapping[str, int], expected: Mapping[str, float]
    ) -> dict[int, deque[Check]]:
        """In the reader thread, in a read transaction. `expected`: each monitor's last check
        time as the engine knows it (absent: never checked)."""
        newest = max_seq(conn)
        if self._seq is None or newest < self._seq or not self._top_up(conn, self._seq):
            self._checks = {key: self._load(conn, key) for key in keys.values()}
        self._seq = newest
        for monitor_id, key in keys.items():
            kept = self._checks.get(key)
            if (kept[-1].checked_at if kept else None) != expected.get(monitor_id):
                self._checks[key] = self._load(conn, key)
        return self._checks

    def _load(self, conn: sqlite3.Connection, key: int) -> deque[Check]:
        return deque(reversed(recent_checks(conn, key, self.points)), maxlen=self.points)

    def _top_up(self, conn: sqlite3.Connection, after: int) -> bool:
        rows = checks_since(conn, after, TOP_UP_LIMIT + 1)
        if len(rows) > TOP_UP_LIMIT:
            return False
        for key, check in rows:
            kept = self._checks.get(key)
            if kept is None:
                kept = self._checks[key] = deque(maxlen=self.points)
            kept.append(check)
        return True
