"""Monitors in SQL: each function takes a connection, so the writer or reader thread runs it."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from .records import MonitorRecord

_COLUMNS = (
    "id, kind, source, name, module, target, interval, timeout, status, labels, spec, "
    "created_at, updated_at"
)


def _values(m: MonitorRecord) -> tuple[object, ...]:
    return (
        m.id,
        m.kind,
        m.source,
        m.name,
        m.module,
        m.target,
        m.interval,
        m.timeout,
        m.status,
        json.dumps(m.labels, sort_keys=True),
        json.dumps(m.spec, sort_keys=True),
        m.created_at,
        m.updated_at,
    )


def _record(row: tuple[object, ...]) -> MonitorRecord:
    (id_, kind, source, name, module, target, interval, timeout, status, labels, spec, c, u) = row
    return MonitorRecord(
        id=str(id_),
        kind=str(kind),
        source="config" if source == "config" else "api",
        name=str(name),
        module=str(module),
        target=str(target),
        interval=float(interval),  # type: ignore[arg-type]
        timeout=None if timeout is None else float(timeout),  # type: ignore[arg-type]
        status=str(status),
        labels=_json_object(labels),
        spec=_json_object(spec),
        created_at=float(c),  # type: ignore[arg-type]
        updated_at=float(u),  # type: ignore[arg-type]
    )


def _json_object(text: object) -> dict[str, Any]:
    """Most monitors have no labels or spec: skip the parser for those (start-up loads all)."""
    if text == "{}":
        return {}
    value: dict[str, Any] = json.loads(str(text))
    return value


def all_monitors(conn: sqlite3.Connection) -> list[MonitorRecord]:
    return [_record(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM monitors ORDER BY key")]


def monitors_of_kind(conn: sqlite3.Connection, kind: str) -> list[MonitorRecord]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM monitors WHERE kind = ? ORDER BY key", (kind,))
    return [_record(r) for r in rows]


def get_monitor(conn: sqlite3.Connection, monitor_id: str) -> MonitorRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM monitors WHERE id = ?", (monitor_id,)).fetchone()
    return None if row is None else _record(row)


def count_monitors(conn: sqlite3.Connection, kind: str, source: str = "api") -> int:
    row = conn.execute(
        "SELECT count(*) FROM monitors WHERE kind = ? AND source = ?", (kind, source)
    ).fetchone()
    return int(row[0])


def insert_monitor(conn: sqlite3.Connection, monitor: MonitorRecord) -> MonitorRecord:
    conn.execute(
        f"INSERT INTO monitors ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _values(monitor),
    )
    return monitor


def update_monitor(conn: sqlite3.Connection, monitor: MonitorRecord) -> MonitorRecord:
    """Replace a monitor's definition in place: its key, and so its results, stay."""
    values = _values(monitor)
    cursor = conn.execute(
        "UPDATE monitors SET kind = ?, source = ?, name = ?, module = ?, target = ?, "
        "interval = ?, timeout = ?, status = ?, labels = ?, spec = ?, created_at = ?, "
        "updated_at = ? WHERE id = ?",
        (*values[1:], monitor.id),
    )
    if cursor.rowcount != 1:
        raise LookupError(monitor.id)
    return monitor


def delete_monitor(conn: sqlite3.Connection, monitor_id: str) -> bool:
    """Delete a monitor and, by cascade, its results and roll-ups."""
    return conn.execute("DELETE FROM monitors WHERE id = ?", (monitor_id,)).rowcount == 1


def sync_config_monitors(
    conn: sqlite3.Connection, wanted: Iterable[MonitorRecord]
) -> tuple[list[MonitorRecord], list[str]]:
    """Make the config monitors in the database those of `wanted`: new ones inserted, changed
    ones updated (keeping created_at and history), missing ones deleted with their history.
    Return the records as stored and the IDs deleted."""
    stored = {
        m.id: m
        for m in (
            _record(r)
            for r in conn.execute(f"SELECT {_COLUMNS} FROM monitors WHERE source = 'config'")
        )
    }
    kept: list[MonitorRecord] = []
    for monitor in wanted:
        old = stored.pop(monitor.id, None)
        if old is None:
            kept.append(insert_monitor(conn, monitor))
        elif old.same_definition(monitor):
            kept.append(old)
        else:
            new = dataclasses.replace(monitor, created_at=old.created_at)
            kept.append(update_monitor(conn, new))
    for monitor_id in stored:
        delete_monitor(conn, monitor_id)
    return kept, list(stored)
