"""What the status page reads: recent results per monitor and uptime from the roll-ups.

Every query is bounded: results are read newest first through results_by_monitor with a
LIMIT, uptime comes from the hourly roll-ups; none reads a monitor's whole history.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from .records import ResultRecord
from .result_rows import HOUR

UPTIME_WINDOWS = (24, 7 * 24, 30 * 24)
"""Hours of the uptime columns: 24 h, 7 d and 30 d (the current hour counts as one)."""

_RECENT = (
    "SELECT seq, checked_at, status, response_time, reason, error, attempts, degraded "
    "FROM results WHERE monitor_key = ? ORDER BY seq DESC LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class Uptime:
    """Checks up / checks, per window of UPTIME_WINDOWS; None where there was no check."""

    ratios: tuple[float | None, ...]


NO_UPTIME = Uptime(tuple(None for _ in UPTIME_WINDOWS))


def monitor_keys(conn: sqlite3.Connection) -> dict[str, int]:
    """Each monitor's row key by its ID."""
    return {str(i): int(k) for i, k in conn.execute("SELECT id, key FROM monitors")}


def recent_results(
    conn: sqlite3.Connection, monitor_id: str, key: int, limit: int
) -> list[ResultRecord]:
    """The newest `limit` results of one monitor, newest first, without their details."""
    return [
        ResultRecord(
            seq=int(seq),
            monitor_id=monitor_id,
            checked_at=float(checked_at),
            status=status,
            response_time=None if response_time is None else float(response_time),
            reason=reason,
            error=error,
            attempts=int(attempts),
            degraded=bool(degraded),
        )
        for seq, checked_at, status, response_time, reason, error, attempts, degraded in (
            conn.execute(_RECENT, (key, limit))
        )
    ]


def _window_sums(since: list[int]) -> str:
    return ", ".join(
        f"sum(CASE WHEN hour >= {int(h)} THEN checks ELSE 0 END), "
        f"sum(CASE WHEN hour >= {int(h)} THEN up ELSE 0 END)"
        for h in since
    )


def _uptime(row: tuple[Any, ...]) -> Uptime:
    pairs = zip(row[0::2], row[1::2], strict=True)
    return Uptime(tuple(up / checks if checks else None for checks, up in pairs))


def uptimes(conn: sqlite3.Connection, now: float) -> dict[int, Uptime]:
    """Every monitor's uptime by row key, in one pass over the last 30 days of roll-ups."""
    since = [int(now // HOUR) - hours + 1 for hours in UPTIME_WINDOWS]
    rows = conn.execute(
        f"SELECT monitor_key, {_window_sums(since)} FROM rollups WHERE hour >= ? "
        "GROUP BY monitor_key",
        (min(since),),
    )
    return {int(row[0]): _uptime(row[1:]) for row in rows}


def uptime_of(conn: sqlite3.Connection, key: int, now: float) -> Uptime:
    """One monitor's uptime (at most 720 roll-up rows, by primary key)."""
    since = [int(now // HOUR) - hours + 1 for hours in UPTIME_WINDOWS]
    row = conn.execute(
        f"SELECT {_window_sums(since)} FROM rollups WHERE monitor_key = ? AND hour >= ?",
        (key, min(since)),
    ).fetchone()
    return _uptime(tuple(row))


def latest_details(
    conn: sqlite3.Connection, key: int, field: str, within: int
) -> tuple[int, float, dict[str, Any]] | None:
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
            return int(seq), float(checked_at), value
    return None
