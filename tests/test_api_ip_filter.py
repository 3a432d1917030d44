"""The IP filter on monitors: the management API refuses a target its module's filter denies
(400 naming the rule), and a scheduled check whose target the filter refuses fails with
`target_forbidden` without sending anything; the unspecified address, which Linux connects
to loopback, as loopback on both paths."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from api_harness import start_api
from ipfilter_listeners import (
    UNSPECIFIED,
    UNSPECIFIED_V4,
    Listener,
    loopback_pair,
    numeric_resolver,
)

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
  tcp_public:  # the README's example: a deny-list with loopback in it
    prober: tcp
    timeout: 2s
    ip_filter:
      denied: &public [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, "::1", "fc00::/7"]
  icmp_public:
    prober: icmp
    timeout: 2s
    ip_filter: {denied: *public}
"""

MAIL = {
    "smtpUrl": "smtp://127.0.0.1:25",
    "receiveUrl": "imap://127.0.0.1:143",
    "email": "probe@example.org",
    "username": "probe",
    "password": "secret",
}
"""An email monitor on loopback: its SMTP server and its mailbox are both judged."""


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
        ("/v1/email-monitors", {**MAIL, "smtpUrl": "smtp://127.0.0.2:25"}, "smtpUrl"),
        ("/v1/email-monitors", {**MAIL, "receiveUrl": "imap://127.0.0.2:143"}, "receiveUrl"),
        ("/v1/email-monitors", {**MAIL, "receiveUrl": "pop3://[::ffff:7f00:2]"}, "receiveUrl"),
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


def loopback_rule(host: str) -> str:
    """How the refusal of an unspecified address names the loopback rule that decided."""
    if host in UNSPECIFIED_V4:
        return "(read as 127.0.0.1) is denied: ip_filter denied: 127.0.0.0/8"
    return "(read as ::1) is denied: ip_filter denied: ::1/128"


@pytest.mark.parametrize("host", UNSPECIFIED)
async def test_the_unspecified_address_is_refused_at_creation_and_update(
    aiohttp_client, tmp_path, monkeypatch, host: str
) -> None:  # type: ignore[no-untyped-def]
    numeric_resolver(monkeypatch)  # 0x0 resolves to 0.0.0.0, and no name leaves the box
    # The scheduler is off: the allowed documentation address below is never probed.
    api = await start_api(aiohttp_client, tmp_path, CONFIG, scheduler=False)
    plain = host.strip("[]")
    status, created = await api.call(
        "POST",
        "/v1/tcp-monitors",
        {"name": "m", "host": "192.0.2.1", "port": 8080, "module": "tcp_public"},
    )
    assert status == 201, created
    before = api.snapshot()
    requests = [
        (
            "POST",
            "/v1/tcp-monitors",
            {"name": "n", "host": plain, "port": 8080, "module": "tcp_public"},
        ),
        ("POST", "/v1/icmp-monitors", {"name": "n", "host": plain, "module": "icmp_public"}),
        ("PUT", f"/v1/tcp-monitors/{created['data']['id']}", {"host": plain}),
    ]
    for method, path, body in requests:
        status, answer = await api.call(method, path, body)
        assert (status, answer["error"]["code"]) == (400, "VALIDATION_ERROR"), (path, answer)
        message = answer["error"]["message"]
        assert message.startswith("host: target address ") and loopback_rule(host) in message
    assert api.snapshot() == before


async def test_scheduled_checks_of_the_unspecified_address_send_nothing(
    aiohttp_client, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Config monitors (not checked at load) spelled as every form of 0.0.0.0 and ::, checked
    by the scheduler: each fails with target_forbidden and no listener sees a connection."""
    numeric_resolver(monkeypatch)
    v4, v6 = Listener(), Listener()
    async with loopback_pair(v4, v6) as port:
        monitors = "".join(
            f"  - {{name: m{i}, module: tcp_public, target: '{host}:{port}', interval: 1s}}\n"
            for i, host in enumerate(UNSPECIFIED)
        )
        api = await start_api(aiohttp_client, tmp_path, CONFIG + "monitors:\n" + monitors)
        engine = api.exporter.monitors
        names = {plan.id: plan.record.name for plan in engine.plans.values()}
        for _ in range(100):  # every first tick comes within the 1s interval (its phase)
            if all(
                state is not None and state.last is not None
                for state in map(engine.states.get, names)
            ):
                break
            await asyncio.sleep(0.05)
        for monitor_id, name in names.items():
            state = engine.states.get(monitor_id)
            assert state is not None and state.last is not None, name
            assert (state.last.status, state.last.reason) == ("down", "target_forbidden")
            host = UNSPECIFIED[int(name[1:])]
            assert loopback_rule(host) in (state.last.error or ""), (host, state.last.error)
        await asyncio.sleep(0.05)  # a connection that slipped through would be accepted by now
        assert (v4.connections, v6.connections) == (0, 0)
