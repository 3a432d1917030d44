"""What /status lists: each monitor's state, recent results and uptime, filtered and grouped
by tag with failures first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..storage import MonitorRecord, MonitorStore
from ..storage.records import Check, ratios
from .recent import RecentChecks
from .states import BY_KEY, STATES, State, monitor_state
from .uptime import NO_CHECKS, Settled

SPARK_POINTS = 24
"""Results per sparkline: one point each."""
MAX_QUERY = 200
UNTAGGED = "Untagged"


@dataclass(frozen=True, slots=True)
class Row:
    record: MonitorRecord
    key: int
    """Its row in the database (-1: not stored)."""
    state: State
    recent: list[Check]
    """Newest first, at most SPARK_POINTS."""
    uptime: tuple[float | None, ...]
    tags: tuple[str, ...]

    @property
    def last(self) -> Check | None:
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


async def load_rows(
    store: MonitorStore,
    records: Sequence[MonitorRecord],
    settled: Settled,
    recent: RecentChecks,
    expected: Mapping[str, float],
) -> list[Row]:
    """Each monitor's row: its uptime sums and newest checks, read at one moment."""
    changes, checks = await recent.read(store, settled.hour - 1, expected)
    keys = changes.keys
    sums = settled.with_recent(changes.sums_since)
    rows = []
    for record in records:
        key = keys.get(record.id)
        newest_first = list(reversed(checks.get(key, ()))) if key is not None else []
        state = monitor_state(record, newest_first[0] if newest_first else None)
        uptime = ratios(sums.get(key, NO_CHECKS) if key is not None else NO_CHECKS)
        rows.append(
            Row(record, -1 if key is None else key, state, newest_first, uptime, tags_of(record))
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
