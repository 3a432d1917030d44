"""The management API under test: a real server (aiohttp's test client over a real socket),
a real SQLite file, and keys made by the real `sonde-exporter api-key` command.

Test files import from here, never from each other.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from sonde_exporter.api.auth import SCOPES
from sonde_exporter.app import build_app
from sonde_exporter.cli import main as cli_main
from sonde_exporter.exporter import Exporter
from sonde_exporter.monitors.options import MonitorOptions

CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 5s
  tcp_tls:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
  icmp:
    prober: icmp
    timeout: 5s
"""
"""No module named `email`: email monitors that name none get the implicit plain module."""

ALL_SCOPES = tuple(SCOPES)


def cli(*args: str) -> tuple[int, str]:
    """Run `sonde-exporter ...` in this process: (exit code, stdout). In a thread of its own:
    a command may run an event loop (api-key's store does), and async tests are in one."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), ThreadPoolExecutor(1) as thread:
        code = thread.submit(cli_main, list(args)).result()
    return code, out.getvalue()


def create_key(db: Path, name: str, scopes: Iterable[str]) -> str:
    args = ["api-key", "--storage.path", str(db), "create", "--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    code, out = cli(*args)
    assert code == 0
    return out.strip()


class Api:
    """A running server and a key with every scope; `call` sends a request with a key."""

    def __init__(
        self,
        client: TestClient[web.Request, web.Application],
        exporter: Exporter,
        db: Path,
        key: str,
    ) -> None:
        self.client = client
        self.exporter = exporter
        self.db = db
        self.key = key

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        """(status, decoded JSON or None for an empty body)."""
        if body is not None:
            kw["json"] = body
        response: ClientResponse = await self.client.request(
            method, path, headers=self.headers(key), **kw
        )
        text = await response.text()
        return response.status, (None if not text else await response.json())

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await self.call("POST", f"/v1/{kind}-monitors", body)
        assert status == 201, answer
        return dict(answer["data"])

    def snapshot(self) -> list[tuple[Any, ...]]:
        """Every monitor, result and key row: "the database unchanged". A key's last use is
        left out: a request that passed the key check records it, also when its body is then
        refused."""
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            rows: list[tuple[Any, ...]] = []
            for table in ("monitors", "results", "rollups"):
                rows += [(table, *r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1")]
            rows += [("key", *r) for r in conn.execute("SELECT name, hash, scopes FROM api_keys")]
            return rows


async def start_api(
    aiohttp_client: Any, tmp_path: Path, config: str = CONFIG, **options: Any
) -> Api:
    """Start a server with the SQLite file tmp_path/data/sonde.db and a key of every scope."""
    db = tmp_path / "data" / "sonde.db"
    key = create_key(db, "all", ALL_SCOPES)
    config_file = tmp_path / "config.yml"
    config_file.write_text(config)
    monitors = MonitorOptions(storage_path=str(db), **options)
    exporter = Exporter.from_file(config_file, monitors=monitors)
    client = await aiohttp_client(build_app(exporter))
    return Api(client, exporter, db, key)
