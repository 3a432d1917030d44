"""Check results in SQL: written with their hourly roll-up, paged newest first, pruned."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Sequence

from .records import HOUR, ResultRecord
from .store import ResultsPage

_COLUMNS = (
    "r.seq, m.id, r.checked_at, r.status, r.response_time, r.reason, r.error, "
    "r.attempts, r.degraded, r.details"
)


def _record(row: Sequence[object]) -> ResultRecord:
    (
        seq,
        monitor_id,
        checked_at,
        status,
        response_time,
        reason,
        error,
        attempts,
        degraded,
        details,
    ) = row
    return ResultRecord(
        seq=int(seq),  # type: ignore[call-overload]
        monitor_id=str(monitor_id),
        checked_at=float(checked_at),  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        response_time=None if response_time is None else float(response_time),  # type: ignore[arg-type]
        reason=None if reason is None else str(reason),
        error=None if error is None else str(error),
        attempts=int(attempts),  # type: ignore[call-overload]
        degraded=bool(degraded),
        details=json.loads(str(details)) if details else {},
    )


def insert_result(conn: sqlite3.Connection, result: ResultRecord) -> ResultRecord:
    """Write one result and count it in its hour's roll-up; LookupError when its monitor is
    gone (deleted while the check ran: the result goes with it)."""
    row = conn.execute("SELECT key FROM monitors WHERE id = ?", (result.monitor_id,)).fetchone()
    if row is None:
        raise LookupError(result.monitor_id)
    key = row[0]
    cursor = conn.execute(
        "INSERT INTO results (monitor_key, checked_at, status, response_time, reason, error, "
        "attempts, degraded, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            result.checked_at,
            result.status,
            result.response_time,
            result.reason,
            result.error,
            result.attempts,
            int(result.degraded),
            json.dumps(result.details) if result.details else None,
        ),
    )
    up = result.status == "up"
    conn.execute(
        "INSERT INTO rollups (monitor_key, hour, checks, up, response_time_sum) "
        "VALUES (?, ?, 1, ?, ?) ON CONFLICT (monitor_key, hour) DO UPDATE SET "
        "checks = checks + 1, up = up + excluded.up, "
        "response_time_sum = response_time_sum + excluded.response_time_sum",
        (key, int(result.checked_at // HOUR), int(up), result.response_time or 0.0 if up else 0.0),
    )
    return dataclasses.replace(result, seq=cursor.lastrowid)


def results_page(
    conn: sqlite3.Connection, monitor_id: str, limit: int, offset: int
) -> ResultsPage | None:
    """A page of a monitor's results, newest first, and how many it has; None: no monitor."""
    row = conn.execute("SELECT key FROM monitors WHERE id = ?", (monitor_id,)).fetchone()
    if row is None:
        return None
    key = row[0]
    total = conn.execute("SELECT count(*) FROM results WHERE monitor_key = ?", (key,)).fetchone()
    # The page's rows are picked on the (monitor_key, seq) index alone, so the rows an offset
    # skips are never read from the table: a deep page costs little more than the first.
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM results r JOIN monitors m ON m.key = r.monitor_key "
        "WHERE r.seq IN (SELECT seq FROM results WHERE monitor_key = ? "
        "ORDER BY seq DESC LIMIT ? OFFSET ?) ORDER BY r.seq DESC",
        (key, limit, offset),
    )
    return ResultsPage([_record(r) for r in rows], int(total[0]))


def latest_results(conn: sqlite3.Connection) -> dict[str, ResultRecord]:
    """Each monitor's newest result (one index seek per monitor)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM monitors m JOIN results r ON r.seq = "
        "(SELECT max(seq) FROM results WHERE monitor_key = m.key)"
    )
    return {str(r[1]): _record(r) for r in rows}


def prune(conn: sqlite3.Connection, older_than: float, keep_per_monitor: int, limit: int) -> int:
    """Delete up to `limit` results older than `older_than` or beyond the newest
    `keep_per_monitor` of their monitor; return how many went. Small steps keep the writer's
    transactions short, so checks are never held up behind a prune."""
    deleted = conn.execute(
        "DELETE FROM results WHERE seq IN "
        "(SELECT seq FROM results WHERE checked_at < ? ORDER BY checked_at LIMIT ?)",
        (older_than, limit),
    ).rowcount
    conn.execute("DELETE FROM rollups WHERE hour < ?", (int(older_than // HOUR) - 1,))
    for (key,) in conn.execute(
        "SELECT monitor_key FROM results GROUP BY monitor_key HAVING count(*) > ?",
        (keep_per_monitor,),
    ).fetchall():
        if deleted >= limit:
            break
        cutoff = conn.execute(
            "SELECT seq FROM results WHERE monitor_key = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (key, keep_per_monitor),
        ).fetchone()
        if cutoff is not None:
            deleted += conn.execute(
                "DELETE FROM results WHERE seq IN (SELECT seq FROM results WHERE monitor_key = ? "
                "AND seq <= ? ORDER BY seq LIMIT ?)",
                (key, cutoff[0], limit - deleted),
            ).rowcount
    return deleted
