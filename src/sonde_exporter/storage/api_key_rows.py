"""API keys in SQL: only each key's SHA-256 is stored, with its name, scopes and last use."""

from __future__ import annotations

import json
import sqlite3

from .records import ApiKeyRow


def _row(row: tuple[object, ...]) -> ApiKeyRow:
    name, digest, scopes, created, used = row
    return ApiKeyRow(
        name=str(name),
        hash=bytes(digest),  # type: ignore[call-overload]
        scopes=frozenset(json.loads(str(scopes))),
        created_at=float(created),  # type: ignore[arg-type]
        last_used_at=None if used is None else float(used),  # type: ignore[arg-type]
    )


def all_keys(conn: sqlite3.Connection) -> list[ApiKeyRow]:
    rows = conn.execute(
        "SELECT name, hash, scopes, created_at, last_used_at FROM api_keys ORDER BY name"
    )
    return [_row(r) for r in rows]


def key_by_hash(conn: sqlite3.Connection, digest: bytes) -> ApiKeyRow | None:
    row = conn.execute(
        "SELECT name, hash, scopes, created_at, last_used_at FROM api_keys WHERE hash = ?",
        (digest,),
    ).fetchone()
    return None if row is None else _row(row)


def insert_key(conn: sqlite3.Connection, key: ApiKeyRow) -> None:
    """IntegrityError when the name (or, astronomically unlikely, the hash) is taken."""
    conn.execute(
        "INSERT INTO api_keys (name, hash, scopes, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)",
        (key.name, key.hash, json.dumps(sorted(key.scopes)), key.created_at, key.last_used_at),
    )


def delete_key(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM api_keys WHERE name = ?", (name,)).rowcount == 1


def touch_key(conn: sqlite3.Connection, name: str, when: float) -> None:
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE name = ?", (when, name))
