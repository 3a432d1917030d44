"""Basic auth next to the management API's keys and the public status page: /v1 routes take
their API key (Bearer) instead of basic auth, and --web.status-page.public opens /status
only; everything else stays behind basic auth."""

from __future__ import annotations

import textwrap
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from api_harness import create_key
from webservers import TCP_CONFIG, basic, bcrypt_hash

from sonde_exporter.app import build_app
from sonde_exporter.exporter import Exporter
from sonde_exporter.monitors.options import MonitorOptions
from sonde_exporter.websecurity import load_web_config

Client = TestClient[web.Request, web.Application]
ALICE = bcrypt_hash("alice-pw")


async def start(aiohttp_client, tmp_path: Path, public_status: bool) -> tuple[Client, str]:  # type: ignore[no-untyped-def]
    db = tmp_path / "sonde.db"
    key = create_key(db, "reader", ["tcp-monitors:read", "sd:read"])
    (tmp_path / "config.yml").write_text(TCP_CONFIG)
    exporter = Exporter.from_file(
        tmp_path / "config.yml", monitors=MonitorOptions(storage_path=str(db), scheduler=False)
    )
    (tmp_path / "web.yml").write_text(textwrap.dedent(f"basic_auth_users:\n  alice: {ALICE}\n"))
    web_config = load_web_config(tmp_path / "web.yml")
    app = build_app(exporter, public_status=public_status, web_config=web_config)
    return await aiohttp_client(app), key


async def answer(client: Client, path: str, authorization: str | None = None) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    async with client.get(path, headers=headers) as response:
        await response.read()
        return response.status


async def test_api_routes_take_their_key_instead_of_basic_auth(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, key = await start(aiohttp_client, tmp_path, public_status=False)
    assert await answer(client, "/v1/tcp-monitors", f"Bearer {key}") == 200
    assert await answer(client, "/v1/sd", f"Bearer {key}") == 200
    async with client.get("/v1/tcp-monitors") as response:  # the API's own 401, not Basic's
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "UNAUTHORIZED"
        assert "Basic" not in response.headers.get("WWW-Authenticate", "")
    assert await answer(client, "/v1/tcp-monitors", basic("alice", "alice-pw")) == 401
    # the rest stays behind basic auth, a Bearer key opens nothing there
    assert await answer(client, "/metrics", f"Bearer {key}") == 401
    assert await answer(client, "/monitors/metrics", f"Bearer {key}") == 401
    assert await answer(client, "/metrics", basic("alice", "alice-pw")) == 200


async def test_the_public_status_page_opens_only_status(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _ = await start(aiohttp_client, tmp_path, public_status=True)
    assert await answer(client, "/status") == 200
    assert await answer(client, "/status/static/status.css") == 200
    for path in ("/", "/metrics", "/config", "/monitors/metrics", "/probe?module=tcp"):
        assert await answer(client, path) == 401, path


async def test_without_the_flag_status_needs_credentials(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _ = await start(aiohttp_client, tmp_path, public_status=False)
    assert await answer(client, "/status") == 401
    assert await answer(client, "/status", basic("alice", "alice-pw")) == 200
