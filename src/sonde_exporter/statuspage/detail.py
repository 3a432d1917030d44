"""What /status/{id} shows of one monitor: a page of its results, the newest for the chart
and timeline, its uptime and the latest traceroute."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..storage import MonitorRecord, MonitorStore, ResultRecord
from ..storage.records import HOUR, Check, ratios
from ..storage.store import Trace
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


async def load_detail(
    store: MonitorStore, record: MonitorRecord, paging: Paging, now: float
) -> Detail | None:
    """None when the monitor is no longer stored."""
    found = await store.history(
        record.id, (paging.limit, paging.offset), CHART_POINTS, TRACE_WITHIN, int(now // HOUR)
    )
    if found is None:
        return None
    return Detail(
        record=record,
        state=monitor_state(record, found.recent[0] if found.recent else None),
        results=found.page.results,
        total=found.page.total,
        recent=found.recent,
        uptime=ratios(found.sums),
        trace=found.trace,
    )
