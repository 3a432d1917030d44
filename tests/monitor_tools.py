"""What the scheduled-monitor tests share: config text with monitors, reading the SQLite file
as a second process would (a plain sqlite3 connection), and loopback targets that hang.

The file is read with its own connection, never through the exporter, so a test sees what is
really on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from api_harness import create_key

from sonde_exporter.monitors.identity import config_monitor_id

T = TypeVar("T")

MODULES = """\
modules:
  tcp:
    prober: tcp
    timeout: 1s
  tcp_other:
    prober: tcp
    timeout: 1s
  tcp_wait:
    prober: tcp
    timeout: 1s
    tcp:
      query_response:
        - expect: "^never sent"
"""


def monitors_yaml(*entries: str) -> str:
    """A config with MODULES and these `monitors:` entries (each a one-line flow mapping)."""
    lines = "".join(f"  - {entry}\n" for entry in entries)
    return MODULES + ("monitors:\n" + lines if entries else "")


def tcp_id(name: str) -> str:
    """The ID a config monitor of a tcp module gets: stable across restarts and reloads."""
    return config_monitor_id("tcp", name)


def read_rows(path: Path, query: str, params: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the file; none while the exporter has not created it (or its
    schema) yet. Read-only: polling never creates the file before the exporter does."""
    try:
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as conn:
            return conn.execute(query, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "unable to open" in str(exc) or "no such table" in str(exc):
            return []
        raise


def stored_monitors(path: Path) -> dict[str, tuple[str, str, float]]:
    """id -> (name, status, interval) of every monitor in the file."""
    rows = read_rows(path, "SELECT id, name, status, interval FROM monitors")
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def stored_results(path: Path, monitor_id: str | None = None) -> list[tuple[int, str, float, str]]:
    """(seq, monitor id, checked_at, status) of the results in the file, oldest first."""
    query = (
        "SELECT r.seq, m.id, r.checked_at, r.status FROM results r "
        "JOIN monitors m ON m.key = r.monitor_key"
    )
    params: tuple[str, ...] = ()
    if monitor_id is not None:
        query += " WHERE m.id = ?"
        params = (monitor_id,)
    rows = read_rows(path, query + " ORDER BY r.seq", params)
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def result_count(path: Path, monitor_id: str) -> int:
    return len(stored_results(path, monitor_id))


async def until(what: str, check: Callable[[], T | Awaitable[T]], within: float = 20.0) -> T:
    """Poll `check` (sync or async) every 50ms until it returns something truthy; fail naming
    `what` after `within` seconds. Tests wait for observable state, never a fixed sleep."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.05)


class HangingServer:
    """A loopback listener that accepts and never answers, counting connections open at once."""

    def __init__(self) -> None:
        self.open = 0
        self.most_open = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.accepted += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await reader.read()  # until the prober gives up and closes
        finally:
            self.open -= 1
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def sd_groups(client: Any, db: Path) -> list[dict[str, Any]]:
    """GET /v1/sd with a key of scope sd:read, made in `db` by the real `api-key` command
    (it works while the server runs)."""
    key = _SD_KEYS.get(db)
    if key is None:
        key = _SD_KEYS[db] = create_key(db, f"sd-{len(_SD_KEYS)}", ["sd:read"])
    response = await client.get("/v1/sd", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200, await response.text()
    groups: list[dict[str, Any]] = await response.json()
    return groups


_SD_KEYS: dict[Path, str] = {}
