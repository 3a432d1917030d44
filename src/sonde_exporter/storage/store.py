"""The store's contract: what the engine, the API and the status page may ask of storage.

Each method says what its caller wants (save this monitor, a page of that one's results),
never how: no connection or SQL leaves the implementation, so another database can take
SQLite's place by passing tests/test_store_contract.py. Every method but the lifecycle ones
raises StorageUnavailable while the store cannot be used; the store says why in its log and
tries again by itself (when_available's callbacks run once it is back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from .records import ApiKeyRow, Check, MonitorRecord, ResultRecord, Sums


class StorageUnavailable(Exception):
    """The store cannot be used right now; the message says why."""


class Conflict(Exception):
    """A new monitor's ID or a new key's name is taken; the message is that ID or name."""


@dataclass(slots=True)
class StorageStats:
    """What /metrics reports about the store."""

    writes: int = 0
    write_errors: int = 0
    transactions: int = 0
    write_seconds: float = 0.0
    last_error: str = ""


class Stored(NamedTuple):
    """Every monitor and each one's newest result, read at one moment."""

    monitors: list[MonitorRecord]
    latest: dict[str, ResultRecord]


class ResultsPage(NamedTuple):
    results: list[ResultRecord]
    """Newest first."""
    total: int
    """All the monitor's results, not only this page's."""


class Trace(NamedTuple):
    """The newest result that carried a traceroute: its row number, time and the traceroute."""

    seq: int
    checked_at: float
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusChanges:
    """What /status reads on each request, at one moment. Monitors are named by their key:
    a stable number the store gives each monitor (a new monitor of a reused ID gets a new
    one), so the page's caches know a recreated monitor from the old one."""

    keys: dict[str, int]
    """Every monitor's key by its ID."""
    sums_since: dict[int, tuple[int, int]]
    """Checks and checks up of the hours asked for, per monitor that has any."""
    newest: int
    """The newest result's row number (0 without results); rows only grow but by deletion."""
    checks: list[tuple[int, Check]] | None
    """The results written after the row asked for, oldest first, with their monitor's key;
    None when none was asked for, there are more than the limit, or that row is past
    `newest` (rows were deleted: the caller reads again what it keeps)."""


@dataclass(frozen=True, slots=True)
class History:
    """What /status/{id} shows of one monitor, read at one moment."""

    page: ResultsPage
    recent: list[Check]
    """The newest checks, newest first."""
    sums: Sums
    """Its uptime sums for the windows ending at the hour asked for."""
    trace: Trace | None


class MonitorStore(Protocol):
    """Monitors, their results with hourly roll-ups, and API keys."""

    stats: StorageStats

    @property
    def available(self) -> bool: ...

    @property
    def key_file(self) -> Path | None:
        """Where the password key lives (next to the data, never in it); None: in memory."""
        ...

    def when_available(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the event loop) each time the store comes back."""

    async def start(self) -> None:
        """Open (or note why not, and keep trying); never raises for the data's location."""

    async def close(self) -> None:
        """Write what was accepted, then close; later calls get StorageUnavailable."""

    def size_bytes(self) -> int:
        """The space the data takes (0 in memory)."""
        ...

    # --- monitors ---------------------------------------------------------------------------

    async def load(self) -> Stored: ...

    async def save_monitor(self, record: MonitorRecord, *, new: bool) -> MonitorRecord:
        """Store a new monitor (Conflict when its ID is taken) or replace one in place, its
        history kept (LookupError when it is gone)."""
        ...

    async def delete_monitor(self, monitor_id: str) -> bool:
        """Delete a monitor with its results and roll-ups; False when there was none."""
        ...

    async def sync_config(
        self, wanted: Iterable[MonitorRecord]
    ) -> tuple[list[MonitorRecord], list[str]]:
        """Make the config monitors those of `wanted`: new ones added, changed ones replaced
        (created_at and history kept), missing ones deleted with their history. Return the
        records as stored and the IDs deleted."""
        ...

    # --- results ----------------------------------------------------------------------------

    def add_result(self, result: ResultRecord) -> asyncio.Future[ResultRecord]:
        """Accept a check's result and count it in its hour's roll-up, without waiting: the
        future gives it with its row number (`seq`) once stored, or LookupError (its monitor
        is gone) or StorageUnavailable. Results may wait a moment to share a write."""
        ...

    async def page_results(self, monitor_id: str, limit: int, offset: int) -> ResultsPage | None:
        """A page of a monitor's results, newest first; None when there is no such monitor.
        Costs about the same at any offset."""
        ...

    async def prune(self, older_than: float, keep_per_monitor: int, limit: int) -> int:
        """Delete up to `limit` results checked before `older_than` or beyond the newest
        `keep_per_monitor` of their monitor, and roll-ups older than `older_than`'s hour
        but one; return how many results went (below `limit`: nothing more to do)."""
        ...

    # --- the status page --------------------------------------------------------------------

    async def uptime_sums(self, hour: int, before: int) -> dict[int, Sums]:
        """Every monitor's uptime sums (by key) for the windows that end with `hour`, over
        the roll-ups of the hours before `before`."""
        ...

    async def status_changes(self, since_hour: int, after: int | None, limit: int) -> StatusChanges:
        """Every monitor's key, the roll-up sums from `since_hour` on, and the results
        written after row `after` (at most `limit` of them; none read when `after` is None)."""
        ...

    async def recent_checks(
        self, keys: Collection[int], points: int, up_to: int
    ) -> dict[int, list[Check]]:
        """The newest `points` checks of each monitor in `keys` among the rows up to
        `up_to`, newest first (an empty list for a monitor without any)."""
        ...

    async def history(
        self, monitor_id: str, page: tuple[int, int], points: int, trace_within: int, hour: int
    ) -> History | None:
        """A page (limit, offset) of a monitor's results, its newest `points` checks, its
        uptime sums for the windows ending with `hour`, and the newest traceroute among its
        last `trace_within` results; None when there is no such monitor."""
        ...

    # --- API keys ---------------------------------------------------------------------------

    async def all_keys(self) -> list[ApiKeyRow]:
        """By name."""
        ...

    async def find_key(self, digest: bytes) -> ApiKeyRow | None: ...

    async def create_key(self, key: ApiKeyRow) -> None:
        """Conflict when the name is taken."""

    async def revoke_key(self, name: str) -> bool:
        """False when there was no such key."""
        ...

    def touch_key(self, name: str, when: float) -> asyncio.Future[None]:
        """Record a key's use without waiting; the future says whether it was stored."""
        ...
