"""`sonde-exporter api-key create|list|revoke`: the management API's keys, in the database a
running server reads them from (it sees a change within a second)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from .api.auth import SCOPES, key_hash, new_key
from .config.fields import plain_name
from .monitors.options import DEFAULT_STORAGE_PATH
from .storage import ApiKeyRow, Conflict, MonitorStore, SqliteStore, StorageUnavailable


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


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    store = SqliteStore(args.storage_path)
    await store.start()
    try:
        return await _run(args, store)
    except StorageUnavailable as exc:  # its message names the file
        print(f"sonde-exporter api-key: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _run(args: argparse.Namespace, store: MonitorStore) -> int:
    if args.command == "create":
        key = new_key()
        row = ApiKeyRow(args.name, key_hash(key), frozenset(args.scopes), time.time(), None)
        try:
            await store.create_key(row)
        except Conflict:
            print(f"sonde-exporter api-key: a key named {args.name!r} exists", file=sys.stderr)
            return 1
        print(key)
        return 0
    if args.command == "list":
        print("NAME\tSCOPES\tCREATED\tLAST USED")
        for row in await store.all_keys():
            scopes = ",".join(sorted(row.scopes))
            print(f"{row.name}\t{scopes}\t{_when(row.created_at)}\t{_when(row.last_used_at)}")
        return 0
    if not await store.revoke_key(args.name):
        print(f"sonde-exporter api-key: no key named {args.name!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.name}")
    return 0
