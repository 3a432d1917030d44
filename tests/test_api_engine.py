"""Monitors created through the API run in the engine: checked at their interval, their
results paged through the API, shown on /monitors/metrics and /v1/sd (scope sd:read);
changes take effect at once; an email monitor's password shows nowhere."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from api_harness import CONFIG, Api, create_key, start_api
from helpers import parse_metrics
from mailstack import MailStack

FIRST_CHECK_WAIT = 30.0
"""A 10 s monitor's first check comes within 10 s (its phase); 30 s leaves room on a loaded
2-core box."""


async def results_of(api: Api, kind: str, monitor_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + FIRST_CHECK_WAIT
    while time.monotonic() < deadline:
        status, answer = await api.call("GET", f"/v1/{kind}-monitors/{monitor_id}/results")
        assert status == 200
        if answer["data"]:
            return list(answer["data"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no check of {monitor_id} within {FIRST_CHECK_WAIT}s")


def series(name: str, labels: dict[str, str], **more: str) -> str:
    """A key of parse_metrics: labels sorted by name."""
    text = ",".join(f'{k}="{v}"' for k, v in sorted({**labels, **more}.items()))
    return f"{name}{{{text}}}"


def database_files_text(db: Path) -> list[str]:
    """The database and its WAL, as text (the key file aside)."""
    return [
        path.read_bytes().decode("latin-1")
        for path in db.parent.iterdir()
        if path.name.startswith(db.name) and not path.name.endswith(".key")
    ]


async def metrics_text(api: Api) -> str:
    response = await api.client.get("/monitors/metrics")
    assert response.status == 200
    return await response.text()


async def test_api_monitors_are_checked_and_shown(
    aiohttp_client, tmp_path, tcp_server, closed_port
) -> None:  # type: ignore[no-untyped-def]
    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    port = await tcp_server(greet)
    api = await start_api(aiohttp_client, tmp_path)
    up = await api.create(
        "tcp", {"name": "up", "host": "127.0.0.1", "port": port, "intervalSeconds": 10}
    )
    down = await api.create(
        "tcp", {"name": "down", "host": "127.0.0.1", "port": closed_port, "intervalSeconds": 10}
    )
    up_results, down_results = await asyncio.gather(
        results_of(api, "tcp", up["id"]), results_of(api, "tcp", down["id"])
    )
    assert up_results[0]["status"] == "up"
    assert isinstance(up_results[0]["responseTimeMs"], int)
    assert down_results[0]["status"] == "down"
    assert down_results[0]["responseTimeMs"] is None
    assert "refused" in down_results[0]["error"].lower()
    assert down_results[0]["reason"] == "connect_refused"
    _, answer = await api.call("GET", f"/v1/tcp-monitors/{up['id']}")
    assert answer["data"]["lastStatus"] == "up"
    assert answer["data"]["lastCheckedAt"] == up_results[0]["checkedAt"]
    assert answer["data"]["lastResponseTimeMs"] == up_results[0]["responseTimeMs"]

    metrics = parse_metrics(await metrics_text(api))
    labels = {
        "module": "tcp",
        "monitor": "up",
        "monitor_id": up["id"],
        "target": f"127.0.0.1:{port}",
    }
    assert metrics[series("probe_success", labels)] == 1
    assert metrics[series("sonde_monitor_state", labels, state="active")] == 1

    # maintenance: still checked, and its state series says so (the alert rules read it)
    status, _ = await api.call("PUT", f"/v1/tcp-monitors/{up['id']}", {"status": "maintenance"})
    assert status == 200
    metrics = parse_metrics(await metrics_text(api))
    assert metrics[series("sonde_monitor_state", labels, state="maintenance")] == 1
    assert series("sonde_monitor_state", labels, state="active") not in metrics
    assert api.exporter.monitors.scheduler.slot(up["id"]) is not None  # still checked

    # /v1/sd: scope sd:read
    assert (await api.client.get("/v1/sd")).status == 401
    reader = create_key(api.db, "tcp-reader", ["tcp-monitors:read"])
    assert (await api.call("GET", "/v1/sd", key=reader))[0] == 403
    status, groups = await api.call("GET", "/v1/sd", key=create_key(api.db, "sd", ["sd:read"]))
    assert status == 200
    ids = {g["labels"]["monitor_id"] for g in groups}
    assert {up["id"], down["id"]} <= ids


async def test_interval_and_status_changes_reach_the_scheduler_at_once(
    aiohttp_client, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    api = await start_api(aiohttp_client, tmp_path)
    monitor = await api.create(
        "tcp", {"name": "m", "host": "127.0.0.1", "port": 9, "isEnabled": False}
    )
    scheduler = api.exporter.monitors.scheduler
    assert scheduler.slot(monitor["id"]) is None  # disabled: not scheduled
    path = f"/v1/tcp-monitors/{monitor['id']}"
    await api.call("PUT", path, {"isEnabled": True})
    slot = scheduler.slot(monitor["id"])  # as soon as the PUT answered, well within a second
    assert slot is not None and slot.plan.record.interval == 60
    await api.call("PUT", path, {"intervalSeconds": 15})
    slot = scheduler.slot(monitor["id"])
    assert slot is not None and slot.plan.record.interval == 15
    await api.call("PUT", path, {"status": "paused"})
    assert scheduler.slot(monitor["id"]) is None
    await api.call("DELETE", path)
    assert monitor["id"] not in api.exporter.monitors.plans


@pytest.mark.root
async def test_icmp_results_carry_packets_and_rtts(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    api = await start_api(aiohttp_client, tmp_path)
    monitor = await api.create(
        "icmp", {"name": "lo", "host": "127.0.0.1", "count": 2, "intervalSeconds": 10}
    )
    result = (await results_of(api, "icmp", monitor["id"]))[0]
    assert result["status"] == "up"
    assert (result["packetsSent"], result["packetsReceived"], result["packetLoss"]) == (2, 2, 0)
    assert 0 <= result["rttMinMs"] <= result["rttAvgMs"] <= result["rttMaxMs"]
    assert result["id"].startswith("icmpr_")


async def test_password_is_not_in_clear_in_the_database(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    api = await start_api(aiohttp_client, tmp_path, scheduler=False)
    password = "Cl3ar-text-Passw0rd"
    body = {
        "name": "mail",
        "smtpUrl": "smtp://127.0.0.1:2525",
        "receiveUrl": "pop3://127.0.0.1:2110",
        "email": "probe@example.com",
        "username": "probe",
        "password": password,
    }
    monitor = await api.create("email", body)
    await api.call("PUT", f"/v1/email-monitors/{monitor['id']}", {"password": password + "2"})
    files = [p for p in api.db.parent.iterdir() if p.name.startswith("sonde.db")]
    assert {p.name for p in files} >= {"sonde.db", "sonde.db-wal", "sonde.db.key"}
    key_file = api.db.parent / "sonde.db.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    # the key file alone opens it; the database alone does not
    assert b"sealed:v1:" in api.db.read_bytes() + (api.db.parent / "sonde.db-wal").read_bytes()


@pytest.mark.mailstack
async def test_email_monitor_round_trip_and_its_password_shows_nowhere(
    aiohttp_client, tmp_path, mail_stack: MailStack, caplog
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    password = mail_stack.passwords["tester"]
    ca = str(mail_stack.ca_file)
    config = (
        CONFIG
        + f"""\
  mail:
    prober: email
    timeout: 30s
    email:
      smtp: {{url: "smtp://127.0.0.1:1", tls_config: {{ca_file: "{ca}"}}}}
      receive: {{url: "imaps://127.0.0.1:1", username: x, password: x, poll_interval: 50ms,
                 tls_config: {{ca_file: "{ca}"}}}}
      from: {mail_stack.address()}
      to: {mail_stack.address()}
"""
    )
    api = await start_api(aiohttp_client, tmp_path, config=config)
    bodies: list[str] = []
    status, answer = await api.call(
        "POST",
        "/v1/email-monitors",
        {
            "name": "round trip",
            "module": "mail",
            "smtpUrl": mail_stack.url("submission"),
            "receiveUrl": mail_stack.url("imaps"),
            "email": mail_stack.address(),
            "username": "tester",
            "password": password,
            "intervalSeconds": 10,
            "timeoutMs": 9000,
        },
    )
    assert status == 201, answer
    monitor_id = answer["data"]["id"]
    result = (await results_of(api, "email", monitor_id))[0]
    assert result["status"] == "up", result
    assert 0 < result["deliveryTimeMs"] < 9000
    for path in (
        f"/v1/email-monitors/{monitor_id}",
        "/v1/email-monitors",
        f"/v1/email-monitors/{monitor_id}/results",
    ):
        bodies.append(str(await api.call("GET", path)))
    bodies.append(str(answer))
    for path in (
        "/monitors/metrics",
        "/metrics",
        "/config",
        "/",
        "/v1/openapi.json",
        f"/status/{monitor_id}",
        f"/probe?monitor={monitor_id}&debug=true",  # the module config with its password
    ):
        bodies.append(await (await api.client.get(path)).text())
    assert "<secret>" in bodies[-1]
    bodies.append(str(await api.call("GET", "/v1/sd")))
    bodies.append(caplog.text)
    bodies += database_files_text(api.db)
    for text in bodies:
        assert password not in text
