"""The store on SQLite: each intent runs its rows modules' SQL as one change or one read of
the Database (a file, or `:memory:` that keeps nothing)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import TypeVar

from . import api_key_rows, monitor_rows, result_rows, status_rows
from .database import Database
from .records import ApiKeyRow, Check, MonitorRecord, ResultRecord, Sums
from .secrets import key_path
from .store import Conflict, History, ResultsPage, StatusChanges, Stored

T = TypeVar("T")
_TAKEN = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def _snapshot(read: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """`read` in one read transaction: its queries see one moment, whatever commits meanwhile."""

    def run(conn: sqlite3.Connection) -> T:
        conn.execute("BEGIN")
        try:
            return read(conn)
        finally:
            conn.execute("COMMIT")

    return run


def _unique(
    insert: Callable[[sqlite3.Connection], T], name: str
) -> Callable[[sqlite3.Connection], T]:
    """`insert`, with a taken ID or name said as Conflict (other refusals stay as they are)."""

    def run(conn: sqlite3.Connection) -> T:
        try:
            return insert(conn)
        except sqlite3.IntegrityError as exc:
            if getattr(exc, "sqlite_errorname", "") in _TAKEN:
                raise Conflict(name) from None
            raise

    return run


def _stored(conn: sqlite3.Connection) -> Stored:
    return Stored(monitor_rows.all_monitors(conn), result_rows.latest_results(conn))


class SqliteStore:
    """MonitorStore on one SQLite file (see Database for how it writes, reads and recovers)."""

    def __init__(
        self,
        path: str,
        retry_interval: float = 5.0,
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.database = Database(path, retry_interval, observe_commit)
        self.stats = self.database.stats

    @property
    def available(self) -> bool:
        return self.database.available

    @property
    def key_file(self) -> Path | None:
        return key_path(self.database.path)

    def when_available(self, callback: Callable[[], None]) -> None:
        self.database.when_available(callback)

    async def start(self) -> None:
        await self.database.start()

    async def close(self) -> None:
        await self.database.close()

    def size_bytes(self) -> int:
        return self.database.size_bytes()

    # --- monitors ---------------------------------------------------------------------------

    async def load(self) -> Stored:
        return await self.database.query(_snapshot(_stored))

    async def save_monitor(self, record: MonitorRecord, *, new: bool) -> MonitorRecord:
        if new:
            insert = _unique(lambda c: monitor_rows.insert_monitor(c, record), record.id)
            return await self.database.change(insert)
        return await self.database.change(lambda c: monitor_rows.update_monitor(c, record))

    async def delete_monitor(self, monitor_id: str) -> bool:
        return await self.database.change(lambda c: monitor_rows.delete_monitor(c, monitor_id))

    async def sync_config(
        self, wanted: Iterable[MonitorRecord]
    ) -> tuple[list[MonitorRecord], list[str]]:
        records = list(wanted)
        return await self.database.change(lambda c: monitor_rows.sync_config_monitors(c, records))

    # --- results ----------------------------------------------------------------------------

    def add_result(self, result: ResultRecord) -> asyncio.Future[ResultRecord]:
        return self.database.change_soon(lambda c: result_rows.insert_result(c, result))

    async def page_results(self, monitor_id: str, limit: int, offset: int) -> ResultsPage | None:
        return await self.database.query(
            lambda c: result_rows.results_page(c, monitor_id, limit, offset)
        )

    async def prune(self, older_than: float, keep_per_monitor: int, limit: int) -> int:
        return await self.database.change(
            lambda c: result_rows.prune(c, older_than, keep_per_monitor, limit)
        )

    # --- the status page --------------------------------------------------------------------

    async def uptime_sums(self, hour: int, before: int) -> dict[int, Sums]:
        return await self.database.query(lambda c: status_rows.window_sums(c, hour, before))

    async def status_changes(self, since_hour: int, after: int | None, limit: int) -> StatusChanges:
        def read(conn: sqlite3.Connection) -> StatusChanges:
            newest = status_rows.max_seq(conn)
            checks = None
            if after is not None and after <= newest:
                checks = status_rows.checks_since(conn, after, limit + 1)
                if len(checks) > limit:
                    checks = None
            return StatusChanges(
                status_rows.monitor_keys(conn),
                status_rows.sums_since(conn, since_hour),
                newest,
                checks,
            )

        return await self.database.query(_snapshot(read))

    async def recent_checks(
        self, keys: Collection[int], points: int, up_to: int
    ) -> dict[int, list[Check]]:
        return await self.database.query(
            _snapshot(lambda c: {k: status_rows.recent_checks(c, k, points, up_to) for k in keys})
        )

    async def history(
        self, monitor_id: str, page: tuple[int, int], points: int, trace_within: int, hour: int
    ) -> History | None:
        def read(conn: sqlite3.Connection) -> History | None:
            row = conn.execute("SELECT key FROM monitors WHERE id = ?", (monitor_id,)).fetchone()
            results = result_rows.results_page(conn, monitor_id, *page)
            if row is None or results is None:
                return None
            key = int(row[0])
            return History(
                results,
                status_rows.recent_checks(conn, key, points),
                status_rows.monitor_sums(conn, key, hour),
                status_rows.latest_details(conn, key, "traceroute", trace_within),
            )

        return await self.database.query(_snapshot(read))

    # --- API keys ---------------------------------------------------------------------------

    async def all_keys(self) -> list[ApiKeyRow]:
        return await self.database.query(api_key_rows.all_keys)

    async def find_key(self, digest: bytes) -> ApiKeyRow | None:
        return await self.database.query(lambda c: api_key_rows.key_by_hash(c, digest))

    async def create_key(self, key: ApiKeyRow) -> None:
        await self.database.change(_unique(lambda c: api_key_rows.insert_key(c, key), key.name))

    async def revoke_key(self, name: str) -> bool:
        return await self.database.change(lambda c: api_key_rows.delete_key(c, name))

    def touch_key(self, name: str, when: float) -> asyncio.Future[None]:
        return self.database.change_soon(lambda c: api_key_rows.touch_key(c, name, when))
