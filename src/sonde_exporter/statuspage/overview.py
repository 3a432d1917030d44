"""What /status lists: each monitor's state, recent results and uptime, filtered and grouped
by tag with failures first."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..storage import MonitorRecord, ResultRecord
from ..storage.status_rows import NO_UPTIME, Uptime, monitor_keys, recent_results, uptimes
from .states import BY_KEY, STATES, State, monitor_state

SPARK_POINTS = 24
"""Results per sparkline: one point each."""
MAX_QUERY = 200
UNTAGGED = "Untagged"


@dataclass(frozen=True, slots=True)
class Row:
    record: MonitorRecord
    state: State
    recent: list[ResultRecord]
    """Newest first, at most SPARK_POINTS."""
    uptime: Uptime
    tags: tuple[str, ...]

    @property
    def last(self) -> ResultRecord | None:
        return self.recent[0] if self.recent else None

    def search_text(self) -> str:
        """What the filter box matches, lower-cased: name, kind, target and tags."""
        r = self.record
        return " ".join((r.name, r.kind, r.target, *self.tags)).lower()


def tags_of(record: MonitorRecord) -> tuple[str, ...]:
    """The API's tags; a config monitor's labels (`team: sre`) when it has none."""
    tags = record.spec.get("tags")
    if isinstance(tags, list) and tags:
        return tuple(sorted({str(t) for t in tags}))
    return tuple(f"{name}: {value}" for name, value in sorted(record.labels.items()))


def load_rows(conn: sqlite3.Connection, records: Sequence[MonitorRecord], now: float) -> list[Row]:
    """In the reader thread: one roll-up pass, then one bounded index seek per monitor."""
    keys = monitor_keys(conn)
    uptime = uptimes(conn, now)
    rows = []
    for record in records:
        key = keys.get(record.id)
        recent = [] if key is None else recent_results(conn, record.id, key, SPARK_POINTS)
        state = monitor_state(record, recent[0] if recent else None)
        rows.append(
            Row(
                record,
                state,
                recent,
                uptime.get(key, NO_UPTIME) if key else NO_UPTIME,
                tags_of(record),
            )
        )
    return rows


class FilterError(ValueError):
    """A query parameter the filter cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Filter:
    text: str = ""
    states: frozenset[str] = frozenset()
    """Empty: every state."""

    def matches(self, row: Row) -> bool:
        if self.states and row.state.key not in self.states:
            return False
        return not self.text or self.text.lower() in row.search_text()


def parse_filter(query: Mapping[str, str], states: Iterable[str]) -> Filter:
    text = query.get("q", "").strip()
    if len(text) > MAX_QUERY:
        raise FilterError(f"q parameter: at most {MAX_QUERY} characters")
    chosen = frozenset(states)
    unknown = sorted(chosen - BY_KEY.keys())
    if unknown:
        names = ", ".join(s.key for s in STATES)
        raise FilterError(f"state parameter: {unknown[0]!r} is not one of {names}")
    return Filter(text, chosen)


def order(rows: Iterable[Row]) -> list[Row]:
    """Failures first, then by name."""
    return sorted(rows, key=lambda r: (r.state.rank, r.record.name.lower(), r.record.id))


def groups(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """Rows by tag (a monitor with two tags is in both), the group with the worst state first;
    untagged monitors last."""
    by_tag: dict[str, list[Row]] = {}
    for row in rows:
        for tag in row.tags or (UNTAGGED,):
            by_tag.setdefault(tag, []).append(row)
    ordered = {tag: order(members) for tag, members in by_tag.items()}
    return sorted(
        ordered.items(),
        key=lambda item: (item[0] == UNTAGGED, item[1][0].state.rank, item[0].lower()),
    )


def state_counts(rows: Iterable[Row]) -> Counter[str]:
    return Counter(row.state.key for row in rows)
