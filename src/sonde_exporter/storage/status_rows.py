"""What the status page reads: recent checks per monitor and uptime from the roll-ups.

Every query is bounded: results are read newest first through results_by_monitor with a
LIMIT, uptime comes from the hourly roll-ups (by primary key per monitor, or one pass over the
roll-ups of the last 30 days for every monitor); none reads a monitor's whole history.
"""

from __future__ import annotations

import json
import sqlite3

from .records import UPTIME_WINDOWS, Check, Sums
from .store import Trace


def monitor_keys(conn: sqlite3.Connection) -> dict[str, int]:
    """Each monitor's row key by its ID."""
    return {str(i): int(k) for i, k in conn.execute("SELECT id, key FROM monitors")}


def recent_checks(
    conn: sqlite3.Connection, key: int, limit: int, up_to: int = 2**63 - 1
) -> list[Check]:
    """The newest `limit` checks of one monitor up to row `up_to`, newest first (one index
    range)."""
    rows = conn.execute(
        "SELECT checked_at, status, response_time, degraded FROM results "
        "WHERE monitor_key = ? AND seq <= ? ORDER BY seq DESC LIMIT ?",
        (key, up_to, limit),
    )
    return list(map(Check._make, rows))


def max_seq(conn: sqlite3.Connection) -> int:
    """The newest result's row number (0 without results)."""
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM results").fetchone()[0])


def checks_since(conn: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, Check]]:
    """Results written after row `after`, oldest first, with their monitor's key: a range of
    the primary key, so only the new rows are read."""
    rows = conn.execute(
        "SELECT monitor_key, checked_at, status, response_time, degraded FROM results "
        "WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    )
    return [(key, Check(at, status, rt, degraded)) for key, at, status, rt, degraded in rows]


def _window_sums(hour: int) -> str:
    return ", ".join(
        f"total(CASE WHEN hour >= {hour - hours + 1} THEN checks END), "
        f"total(CASE WHEN hour >= {hour - hours + 1} THEN up END)"
        for hours in UPTIME_WINDOWS
    )


def window_sums(conn: sqlite3.Connection, hour: int, before: int | None = None) -> dict[int, Sums]:
    """Every monitor's sums for the windows ending with `hour`, over the roll-ups of the hours
    before `before` (all when None): one pass over the last 30 days of roll-ups."""
    first = hour - max(UPTIME_WINDOWS) + 1
    rows = conn.execute(
        f"SELECT monitor_key, {_window_sums(hour)} FROM rollups WHERE hour >= ? AND hour < ? "
        "GROUP BY monitor_key",
        (first, hour + 1 if before is None else before),
    )
    return {int(row[0]): tuple(int(v) for v in row[1:]) for row in rows}


def sums_since(conn: sqlite3.Connection, hour: int) -> dict[int, tuple[int, int]]:
    """Every monitor's checks and checks up from `hour` on: a primary-key range per monitor."""
    rows = conn.execute(
        "SELECT m.key, total(r.checks), total(r.up) FROM monitors m "
        "JOIN rollups r ON r.monitor_key = m.key AND r.hour >= ? GROUP BY m.key",
        (hour,),
    )
    return {int(key): (int(checks), int(up)) for key, checks, up in rows}


def monitor_sums(conn: sqlite3.Connection, key: int, hour: int) -> Sums:
    """One monitor's sums for the windows ending with `hour` (at most 720 roll-up rows)."""
    row = conn.execute(
        f"SELECT {_window_sums(hour)} FROM rollups WHERE monitor_key = ? AND hour >= ?",
        (key, hour - max(UPTIME_WINDOWS) + 1),
    ).fetchone()
    return tuple(int(v) for v in row)


def latest_details(conn: sqlite3.Connection, key: int, field: str, within: int) -> Trace | None:
    """The newest of a monitor's last `within` results whose details have `field` (an
    object): that result's seq, checked_at and the field's value; None when none has."""
    rows = conn.execute(
        "SELECT seq, checked_at, details FROM (SELECT seq, checked_at, details FROM results "
        "WHERE monitor_key = ? ORDER BY seq DESC LIMIT ?) WHERE details LIKE ?",
        (key, within, f'%"{field}"%'),
    )
    for seq, checked_at, details in rows:
        value = json.loads(details).get(field)
        if isinstance(value, dict):
            return Trace(int(seq), float(checked_at), value)
    return None
