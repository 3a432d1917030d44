"""Shared fixtures: an exporter under test, real loopback servers, a test PKI, the mail stack.

Helpers that are not fixtures live in helpers.py. Markers (registered in pyproject.toml) name
what a test needs beyond this process: `root`, `mailstack`, `prometheus`. A test that lacks
what it needs fails with a message that says so, never skips; deselect instead, for example
`pytest -m "not root"` (see the README).
"""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import loopback_guard
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from mailstack import mail_stack  # noqa: F401  (session fixture: real Postfix + Dovecot)
from tcpservers import Pki

from sonde_exporter.app import build_app
from sonde_exporter.exporter import Exporter


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI set, as root, every package installed) a skipped test is a failure: nothing
    may pass there by not running."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and reporter is not None and skipped:
        names = ", ".join(report.nodeid for report in skipped[:5])
        reporter.write_line(f"CI: {len(skipped)} skipped test(s) count as failures: {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[None]:
    """No test in this process can resolve a name or reach an address off this machine."""
    with loopback_guard.installed():
        yield


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file (dedented YAML) and return its path."""

    def write(text: str, name: str = "config.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


Client = TestClient[web.Request, web.Application]
ExporterClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def exporter_client(aiohttp_client, write_config) -> ExporterClient:  # type: ignore[no-untyped-def]
    """Start an exporter for a config text; the client has `.exporter` for inspection."""

    async def start(config_text: str, **options: object) -> Client:
        exporter = Exporter.from_file(write_config(config_text), **options)  # type: ignore[arg-type]
        client: Client = await aiohttp_client(build_app(exporter))
        client.exporter = exporter  # type: ignore[attr-defined]
        return client

    return start


@pytest.fixture
async def tcp_server() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    """Start a real asyncio TCP server on loopback for a handler; returns its port."""
    servers: list[asyncio.Server] = []

    async def start(handler: StreamHandler, host: str = "127.0.0.1", **kw: object) -> int:
        server = await asyncio.start_server(handler, host, 0, **kw)  # type: ignore[arg-type]
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so no one else takes it, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A private CA with a localhost server certificate, its files under tmp_path."""
    return Pki.create(tmp_path)
