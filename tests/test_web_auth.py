"""--web.config.file, HTTP side, in process: basic auth (CVE-2022-46146 included), rate
limits, headers, which routes are covered, and --web.enable-debug."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from webservers import TCP_CONFIG, basic, bcrypt_hash

from sonde_exporter.app import LISTENER_CONTEXT, build_app
from sonde_exporter.cli import parse_args
from sonde_exporter.exporter import Exporter
from sonde_exporter.selfmetrics import SelfMetrics
from sonde_exporter.websecurity import WebConfig, install_web_security, load_web_config
from sonde_exporter.websecurity.reloading import WebSecurity

Client = TestClient[web.Request, web.Application]
Start = Callable[..., Awaitable[Client]]

ALICE = bcrypt_hash("alice-pw")


@pytest.fixture
def secured(aiohttp_client, tmp_path: Path) -> Start:  # type: ignore[no-untyped-def]
    """An exporter app guarded by a web config (dedented YAML), on a loopback test server."""

    async def start(web_config: str, enable_debug: bool = True) -> Client:
        (tmp_path / "config.yml").write_text(TCP_CONFIG)
        exporter = Exporter.from_file(tmp_path / "config.yml")
        exporter.enable_debug = enable_debug
        web_file = tmp_path / "web.yml"
        web_file.write_text(textwrap.dedent(web_config))
        app = build_app(exporter, web_config=load_web_config(web_file))
        client: Client = await aiohttp_client(app)
        return client

    return start


async def status(client: Client, path: str = "/metrics", authorization: str | None = None) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    async with client.get(path, headers=headers) as response:
        await response.read()
        return response.status


async def test_basic_auth_right_wrong_missing_and_unknown(secured: Start) -> None:
    client = await secured(f"basic_auth_users:\n  alice: {ALICE}\n")
    assert await status(client, authorization=basic("alice", "alice-pw")) == 200
    response = await client.get("/metrics", headers={"Authorization": basic("alice", "wrong")})
    assert (response.status, await response.text()) == (401, "Unauthorized\n")
    assert response.headers["WWW-Authenticate"] == "Basic"
    for authorization in (
        None,
        basic("bob", "alice-pw"),  # unknown user
        basic("Alice", "alice-pw"),  # names are case-sensitive
        "Bearer alice-pw",
        "Basic !!!not-base64",
        "Basic " + "YWxpY2U=",  # "alice" without a colon
    ):
        assert await status(client, authorization=authorization) == 401, authorization
    assert await status(client, authorization="bAsIc " + basic("alice", "alice-pw")[6:]) == 200


async def test_the_stored_hash_is_not_a_password_cve_2022_46146(secured: Start) -> None:
    client = await secured(f"basic_auth_users:\n  alice: {ALICE}\n")
    assert await status(client, authorization=basic("alice", ALICE)) == 401
    assert await status(client, authorization=basic("alice", "alice-pw")) == 200  # now cached
    assert await status(client, authorization=basic("alice", ALICE)) == 401
    assert await status(client, authorization=basic("nobody", ALICE)) == 401


async def test_passwords_over_72_bytes_are_refused(secured: Start) -> None:
    long_password = "p" * 72
    client = await secured(f"basic_auth_users:\n  alice: {bcrypt_hash(long_password)}\n")
    assert await status(client, authorization=basic("alice", long_password)) == 200
    # bcrypt reads 72 bytes; older libraries cut the rest off and let these in.
    assert await status(client, authorization=basic("alice", long_password + "x")) == 401
    assert await status(client, authorization=basic("alice", "é" * 40)) == 401  # 80 bytes


async def test_a_hash_bcrypt_rejects_is_a_401_and_one_warning(
    secured: Start, caplog: pytest.LogCaptureFixture
) -> None:
    good = bcrypt_hash("pw")
    salt_end = 7 + 21  # the 22nd salt character carries 2 bits; "/" sets ones bcrypt refuses
    malformed = good[:salt_end] + "/" + good[salt_end + 1 :]
    with pytest.raises(ValueError):
        bcrypt.checkpw(b"pw", malformed.encode())  # what the file's format check cannot see
    client = await secured(f"basic_auth_users:\n  alice: {malformed}\n  bob: {good}\n")
    with caplog.at_level(logging.WARNING, "sonde_exporter"):
        for _ in range(2):
            assert await status(client, authorization=basic("alice", "pw")) == 401
    assert await status(client, authorization=basic("bob", "pw")) == 200
    warnings = [r for r in caplog.records if "bcrypt refuses the stored hash" in r.getMessage()]
    assert len(warnings) == 1
    assert malformed not in caplog.text


async def test_a_flood_of_wrong_passwords_does_not_hold_up_known_credentials(
    secured: Start,
) -> None:
    # Cost 10 is 70 ms a check or more (more on a loaded box): 12 of them through 2 threads
    # take 0.4 s at least; a request with cached credentials waits for none of them.
    client = await secured(f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw', 10)}\n")
    assert await status(client, authorization=basic("alice", "alice-pw")) == 200  # cached now
    flood = [
        asyncio.create_task(status(client, authorization=basic("alice", f"guess{i}")))
        for i in range(12)
    ]
    await asyncio.sleep(0)
    assert await status(client, authorization=basic("alice", "alice-pw")) == 200
    assert not all(task.done() for task in flood)  # answered while the flood was checked
    assert set(await asyncio.gather(*flood)) == {401}


async def test_password_checks_past_the_queue_are_turned_away(secured: Start) -> None:
    # 48 wrong passwords at once: 32 may run or wait (2 at a time, 70 ms or more each, so the
    # 32 take over a second), the rest arrive within milliseconds and get 429 at once.
    client = await secured(f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw', 10)}\n")

    async def attempt(i: int) -> tuple[int, str | None]:
        headers = {"Authorization": basic("alice", f"guess{i}")}
        async with client.get("/metrics", headers=headers) as response:
            await response.read()
            return response.status, response.headers.get("Retry-After")

    answers = await asyncio.gather(*(attempt(i) for i in range(48)))
    assert set(answers) == {(401, None), (429, "1")}
    assert sum(status == 401 for status, _ in answers) >= 32


async def test_routes_covered_and_headers_on_every_answer(secured: Start) -> None:
    client = await secured(
        f"""\
        basic_auth_users:
          alice: {ALICE}
        http_server_config:
          headers:
            X-Frame-Options: deny
            Content-Security-Policy: "default-src 'none'"
            X-XSS-Protection: ""
        """
    )
    for path in ("/metrics", "/probe?module=tcp&target=x:1", "/config", "/logs?id=1", "/", "/nope"):
        response = await client.get(path)
        assert response.status == 401, path
        assert response.headers["X-Frame-Options"] == "deny"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'"
        assert "X-XSS-Protection" not in response.headers  # blank: unset, as in exporter-toolkit
    assert await status(client, "/-/reload", basic("alice", "x")) == 401
    for path in ("/-/healthy", "/-/ready"):
        response = await client.get(path)
        assert response.status == 200
        assert response.headers["X-Frame-Options"] == "deny"
    assert await status(client, "/nope", basic("alice", "alice-pw")) == 404
    assert await status(client, "/-/healthy/", basic("alice", "x")) == 401  # not the route


async def test_rate_limit_global(secured: Start) -> None:
    # An interval of an hour: no token comes back while the test runs, whatever the load.
    client = await secured("rate_limit:\n  interval: 1h\n  burst: 3\n")
    assert [await status(client) for _ in range(4)] == [200, 200, 200, 429]
    response = await client.get("/config")
    assert (response.status, await response.text()) == (429, "Too Many Requests\n")
    assert await status(client, "/-/healthy") == 200  # health checks are not counted


async def test_rate_limit_per_client(secured: Start) -> None:
    client = await secured(
        "rate_limit:\n  interval: 1h\n  burst: 5\n  per_client:\n    interval: 1h\n    burst: 2\n"
    )
    assert [await status(client) for _ in range(3)] == [200, 200, 429]
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        codes = []
        for _ in range(4):
            async with other.get(client.make_url("/metrics")) as response:
                codes.append(response.status)
    # The second client has its own 2, then the global bucket (5) is empty: 2 + 2 + 1 = 5.
    assert codes == [200, 200, 429, 429]
    assert await status(client) == 429


async def test_debug_output_can_be_turned_off(secured: Start, closed_port: int) -> None:
    query = f"/probe?module=tcp&target=127.0.0.1:{closed_port}"
    client = await secured("", enable_debug=False)
    assert await status(client, query) == 200
    for path in (f"{query}&debug=true", "/logs?id=1"):
        response = await client.get(path)
        assert response.status == 403, path
        assert await response.text() == (
            "debug output is turned off on this exporter (--no-web.enable-debug)\n"
        )
    assert await status(client, f"{query}&debug=nonsense") == 400  # still a bad request
    client = await secured("")
    response = await client.get(f"{query}&debug=true")
    assert response.status == 200
    assert "Logs for the probe:" in await response.text()


def test_enable_debug_flag() -> None:
    assert parse_args([]).enable_debug is True
    assert parse_args(["--no-web.enable-debug"]).enable_debug is False
    assert parse_args(["--web.enable-debug"]).enable_debug is True


def test_without_a_web_config_nothing_is_installed(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(TCP_CONFIG)
    exporter = Exporter.from_file(tmp_path / "config.yml")
    app = web.Application()
    assert install_web_security(app, None, exporter.metrics) is None
    assert (list(app.middlewares), list(app.on_response_prepare), list(app.cleanup_ctx)) == (
        [],
        [],
        [],
    )
    assert LISTENER_CONTEXT not in build_app(exporter)
    assert "sonde_web_config" not in generate_latest(exporter.metrics.registry).decode()


def test_a_reload_keeps_what_it_can(tmp_path: Path) -> None:
    """Same users: the cache of good logins stays (a certificate renewal costs no bcrypt);
    same limits: the buckets stay (a reload does not refill them)."""
    web_file = tmp_path / "web.yml"

    def load(text: str) -> WebConfig:
        web_file.write_text(text)
        config = load_web_config(web_file)
        assert config is not None
        return config

    users = f"basic_auth_users:\n  alice: {ALICE}\nrate_limit:\n  interval: 1s\n  burst: 5\n"
    security = WebSecurity(load(users), SelfMetrics())
    before = security.settings
    security.use(load(users + "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"))
    assert security.settings.headers == (("X-Frame-Options", "deny"),)
    assert (security.settings.auth, security.settings.limiter) == (before.auth, before.limiter)
    security.use(
        load(
            f"basic_auth_users:\n  alice: {bcrypt_hash('new')}\nrate_limit:\n  interval: 2s\n  burst: 5\n"
        )
    )
    assert security.settings.auth is not before.auth
    assert security.settings.limiter is not before.limiter
