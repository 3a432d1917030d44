"""`sonde-exporter api-key create|list|revoke`: the management API's keys, in the database a
running server reads them from (it sees a change within a second)."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .api.auth import SCOPES, key_hash, new_key
from .config.fields import plain_name
from .monitors.options import DEFAULT_STORAGE_PATH
from .storage.api_key_rows import ApiKeyRow, all_keys, delete_key, insert_key
from .storage.schema import SchemaTooNew, migrate


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sonde-exporter api-key", description="Manage the management API's keys."
    )
    _storage_flag(p, DEFAULT_STORAGE_PATH)
    # Also after the subcommand, as users type it; there it only overrides when given.
    storage = argparse.ArgumentParser(add_help=False)
    _storage_flag(storage, argparse.SUPPRESS)
    commands = p.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create", parents=[storage], help="create a key and print it (once)"
    )
    create.add_argument("--name", required=True, help="what the key is for (unique)")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        required=True,
        choices=SCOPES,
        help="a scope the key gets; repeat for more (write does not imply read)",
    )
    commands.add_parser(
        "list", parents=[storage], help="names, scopes, created, last used (never the keys)"
    )
    revoke = commands.add_parser("revoke", parents=[storage], help="delete a key")
    revoke.add_argument("name")
    args = p.parse_args(argv)
    if args.command == "create":
        try:
            plain_name(args.name)
        except ValueError as exc:
            p.error(f"--name: {exc}")
        if len(args.name) > 255:
            p.error("--name: at most 255 characters")
    if args.storage_path == ":memory:":
        p.error("--storage.path must be the server's file; :memory: keeps nothing")
    return args


def _storage_flag(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--storage.path",
        dest="storage_path",
        default=default,
        metavar="FILE",
        help=f"the server's SQLite file (default: {DEFAULT_STORAGE_PATH})",
    )


@contextlib.contextmanager
def _database(path: str) -> Iterator[sqlite3.Connection]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
        yield conn
    finally:
        conn.close()


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        with _database(args.storage_path) as conn:
            return _run(args, conn)
    except (sqlite3.Error, OSError, SchemaTooNew) as exc:
        print(f"sonde-exporter api-key: {args.storage_path}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, conn: sqlite3.Connection) -> int:
    if args.command == "create":
        key = new_key()
        row = ApiKeyRow(args.name, key_hash(key), frozenset(args.scopes), time.time(), None)
        try:
            insert_key(conn, row)
        except sqlite3.IntegrityError:
            print(f"sonde-exporter api-key: a key named {args.name!r} exists", file=sys.stderr)
            return 1
        print(key)
        return 0
    if args.command == "list":
        print("NAME\tSCOPES\tCREATED\tLAST USED")
        for row in all_keys(conn):
            scopes = ",".join(sorted(row.scopes))
            print(f"{row.name}\t{scopes}\t{_when(row.created_at)}\t{_when(row.last_used_at)}")
        return 0
    if not delete_key(conn, args.name):
        print(f"sonde-exporter api-key: no key named {args.name!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.name}")
    return 0
