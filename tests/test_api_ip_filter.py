"""The IP filter on monitors: the management API refuses a target its module's filter denies
(400 naming the rule), and a scheduled check whose target the filter refuses fails with
`target_forbidden` without sending anything."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from api_harness import start_api

CONFIG = """\
ip_filter:
  default: allow
  denied: [127.0.0.2]
modules:
  tcp:
    prober: tcp
    timeout: 2s
  icmp:
    prober: icmp
    timeout: 2s
  tcp_local_only:
    prober: tcp
    timeout: 2s
    ip_filter:
      allowed: [127.0.0.1]
    allowed_ports: [1000-65535]
"""


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/tcp-monitors", {"host": "127.0.0.2", "port": 8080}, "host"),
        ("/v1/tcp-monitors", {"host": "::ffff:127.0.0.2", "port": 8080}, "host"),
        ("/v1/tcp-monitors", {"host": "169.254.169.254", "port": 80}, "host"),
        (
            "/v1/tcp-monitors",
            {"host": "127.0.0.3", "port": 8080, "module": "tcp_local_only"},
            "host",
        ),
        ("/v1/tcp-monitors", {"host": "127.0.0.1", "port": 80, "module": "tcp_local_only"}, "host"),
        ("/v1/icmp-monitors", {"host": "127.0.0.2"}, "host"),
    ],
)
async def test_a_denied_target_is_refused_at_creation(
    aiohttp_client, tmp_path, path: str, body: dict[str, Any], field: str
) -> None:  # type: ignore[no-untyped-def]
    api = await start_api(aiohttp_client, tmp_path, CONFIG, scheduler=False)
    before = api.snapshot()
    status, answer = await api.call("POST", path, {"name": "m", **body})
    assert status == 400, answer
    assert answer["error"]["code"] == "VALIDATION_ERROR"
    assert answer["error"]["message"].startswith(f"{field}: ")
    assert api.snapshot() == before


async def test_an_update_to_a_denied_target_is_refused(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    api = await start_api(aiohttp_client, tmp_path, CONFIG, scheduler=False)
    status, created = await api.call(
        "POST", "/v1/tcp-monitors", {"name": "m", "host": "127.0.0.1", "port": 8080}
    )
    assert status == 201, created
    before = api.snapshot()
    monitor_id = created["data"]["id"]
    status, answer = await api.call("PUT", f"/v1/tcp-monitors/{monitor_id}", {"host": "127.0.0.2"})
    assert (status, answer["error"]["code"]) == (400, "VALIDATION_ERROR")
    assert answer["error"]["message"].startswith("host: ")
    assert api.snapshot() == before


async def test_a_check_the_filter_refuses_fails_and_sends_nothing(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.2", 0)
    port = server.sockets[0].getsockname()[1]
    # A config monitor is not checked against the filter at load (its name may resolve
    # elsewhere later); its checks are, at every resolution.
    config = CONFIG + (
        f"monitors:\n  - name: denied\n    module: tcp\n    target: 127.0.0.2:{port}\n"
        "    interval: 1s\n"
    )
    try:
        api = await start_api(aiohttp_client, tmp_path, config)
        engine = api.exporter.monitors
        (monitor_id,) = engine.plans
        for _ in range(100):  # the first tick comes within the 1s interval (its phase)
            state = engine.states.get(monitor_id)
            if state is not None and state.last is not None:
                break
            await asyncio.sleep(0.05)
        assert state is not None and state.last is not None
        assert (state.last.status, state.last.reason) == ("down", "target_forbidden")
        assert "127.0.0.2" in (state.last.error or "")
        metrics = await (await api.client.get("/monitors/metrics")).text()
        assert 'reason="target_forbidden"' in metrics
        assert connections == 0
    finally:
        server.close()
        await server.wait_closed()
