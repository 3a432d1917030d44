"""The schema as forward migrations: each runs once, in order, recorded in user_version."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: monitors, results with hourly roll-ups, API keys
    """
    CREATE TABLE monitors (
        key INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('config', 'api')),
        name TEXT NOT NULL,
        module TEXT NOT NULL,
        target TEXT NOT NULL,
        interval REAL NOT NULL,
        timeout REAL,
        status TEXT NOT NULL CHECK (status IN ('active', 'maintenance', 'disabled')),
        labels TEXT NOT NULL DEFAULT '{}',
        spec TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX monitors_by_kind ON monitors (kind, key);
    CREATE TABLE results (
        seq INTEGER PRIMARY KEY,
        monitor_key INTEGER NOT NULL REFERENCES monitors (key) ON DELETE CASCADE,
        checked_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('up', 'down', 'timeout')),
        response_time REAL,
        reason TEXT,
        error TEXT,
        attempts INTEGER NOT NULL,
        degraded INTEGER NOT NULL,
        details TEXT
    );
    CREATE INDEX results_by_monitor ON results (monitor_key, seq);
    CREATE INDEX results_by_time ON results (checked_at);
    CREATE TABLE rollups (
        monitor_key INTEGER NOT NULL REFERENCES monitors (key) ON DELETE CASCADE,
        hour INTEGER NOT NULL,
        checks INTEGER NOT NULL,
        up INTEGER NOT NULL,
        response_time_sum REAL NOT NULL,
        PRIMARY KEY (monitor_key, hour)
    ) WITHOUT ROWID;
    CREATE TABLE api_keys (
        name TEXT PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL
    );
    """,
)
"""Append a migration to change the schema; never edit one that has shipped."""


class SchemaTooNew(Exception):
    """The database was written by a newer sonde-exporter."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date, each migration in its own transaction; return the version."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"schema version {version} is newer than this sonde-exporter's {len(MIGRATIONS)}"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        script = MIGRATIONS[number - 1]
        conn.executescript(f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;")
    return len(MIGRATIONS)
