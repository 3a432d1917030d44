"""What /status/{id} shows of one monitor: a page of its results, the newest for the chart
and timeline, its uptime and the latest traceroute."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..storage import MonitorRecord, ResultRecord
from ..storage.result_rows import results_page
from ..storage.status_rows import Check, latest_details, monitor_sums, ratios, recent_checks
from .states import State, monitor_state

CHART_POINTS = 200
"""Results drawn on the chart and the timeline (the newest)."""
TRACE_WITHIN = 1000
"""A traceroute is looked for among this many newest results."""
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PageError(ValueError):
    """A bad limit or offset; the message names the parameter."""


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not low <= int(text) <= high:
        raise PageError(f"{name} parameter: must be a whole number from {low} to {high}")
    return int(text)


def parse_paging(query: Mapping[str, str]) -> Paging:
    return Paging(
        _integer(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        _integer(query, "offset", 0, 0, 10**9),
    )


@dataclass(frozen=True, slots=True)
class Trace:
    seq: int
    checked_at: float
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Detail:
    record: MonitorRecord
    state: State
    results: list[ResultRecord]
    """The page asked for, newest first."""
    total: int
    recent: list[Check]
    """Newest first, at most CHART_POINTS."""
    uptime: tuple[float | None, ...]
    trace: Trace | None


def load_detail(
    conn: sqlite3.Connection, record: MonitorRecord, paging: Paging, now: float
) -> Detail | None:
    """In the reader thread; None when the monitor is no longer stored."""
    row = conn.execute("SELECT key FROM monitors WHERE id = ?", (record.id,)).fetchone()
    page = results_page(conn, record.id, paging.limit, paging.offset)
    if row is None or page is None:
        return None
    key = int(row[0])
    recent = recent_checks(conn, key, CHART_POINTS)
    found = latest_details(conn, key, "traceroute", TRACE_WITHIN)
    return Detail(
        record=record,
        state=monitor_state(record, recent[0] if recent else None),
        results=page[0],
        total=page[1],
        recent=recent,
        uptime=ratios(monitor_sums(conn, key, now)),
        trace=None if found is None else Trace(*found),
    )
