"""The routes around /probe: reload, /config, the status page, /logs, /metrics, health."""

from __future__ import annotations

import asyncio
import platform
import time

import pytest
from helpers import parse_metrics, probe
from pydantic import BaseModel

from sonde_exporter import __version__
from sonde_exporter.config import Config, Secret
from sonde_exporter.history import ProbeResult

CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: 2s
  banner:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
        - expect: "^hello"
"""

NEW_CONFIG = """
modules:
  tcp_new:
    prober: tcp
    timeout: 1m30s
"""

BROKEN_CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: soon
"""


async def accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@pytest.fixture
async def ok_and_refused(tcp_server, closed_port) -> tuple[str, str]:
    """Two tcp targets: one that accepts connections (the probe succeeds), one that refuses them."""
    port = await tcp_server(accept_and_close)
    return f"127.0.0.1:{port}", f"127.0.0.1:{closed_port}"


async def get_metrics(client) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status == 200
    return parse_metrics(await response.text())


async def test_post_reload_swaps_the_config(exporter_client, write_config, closed_port):
    client = await exporter_client(CONFIG)
    before = (await get_metrics(client))["sonde_config_last_reload_success_timestamp_seconds"]
    write_config(NEW_CONFIG)
    response = await client.post("/-/reload")
    assert (response.status, await response.text()) == (200, "OK\n")
    status, body = await probe(client, module="tcp_new", target=f"127.0.0.1:{closed_port}")
    assert status == 200 and parse_metrics(body)["probe_timeout_seconds"] == 90
    assert (await probe(client, module="tcp", target="127.0.0.1:1"))[0] == 400
    metrics = await get_metrics(client)
    assert metrics["sonde_config_last_reload_successful"] == 1
    assert metrics["sonde_config_last_reload_success_timestamp_seconds"] >= before


async def test_bad_reload_keeps_the_old_config_serving(exporter_client, write_config, closed_port):
    client = await exporter_client(CONFIG)
    path = write_config(BROKEN_CONFIG)
    response = await client.post("/-/reload")
    body = await response.text()
    assert response.status == 400
    assert body == (
        f"failed to reload config: {path}:5: modules.tcp.timeout: invalid duration 'soon': "
        "use a number with a unit, such as 5s, 1m30s or 250ms\n"
    )
    metrics = await get_metrics(client)
    assert metrics["sonde_config_last_reload_successful"] == 0
    status, body = await probe(client, module="tcp", target=f"127.0.0.1:{closed_port}")
    assert status == 200 and parse_metrics(body)["probe_timeout_seconds"] == 2
    assert "banner:" in await (await client.get("/config")).text()

    write_config(NEW_CONFIG)
    assert (await client.post("/-/reload")).status == 200
    assert (await get_metrics(client))["sonde_config_last_reload_successful"] == 1


async def test_reload_needs_post(exporter_client):
    client = await exporter_client(CONFIG)
    for method in ("GET", "PUT", "DELETE", "HEAD"):
        response = await client.request(method, "/-/reload")
        assert response.status == 405, method
    response = await client.get("/-/reload")
    assert await response.text() == "This endpoint requires a POST request.\n"
    assert (await get_metrics(client))["sonde_config_last_reload_successful"] == 1


async def test_reload_leaves_probes_in_flight_alone(exporter_client, write_config, tcp_server):
    """A probe keeps the module it started with; requests after the reload see the new file."""
    connected, release = asyncio.Event(), asyncio.Event()

    async def greet_when_released(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        connected.set()
        await release.wait()
        writer.write(b"hello\r\n")
        await writer.drain()
        writer.close()

    port = await tcp_server(greet_when_released)
    client = await exporter_client(CONFIG)
    in_flight = asyncio.create_task(probe(client, module="banner", target=f"127.0.0.1:{port}"))
    async with asyncio.timeout(5):
        await connected.wait()
    assert (await get_metrics(client))["sonde_probes_in_flight"] == 1
    write_config(NEW_CONFIG)
    assert (await client.post("/-/reload")).status == 200
    release.set()
    status, body = await in_flight
    assert status == 200 and parse_metrics(body)["probe_success"] == 1
    assert (await probe(client, module="banner", target=f"127.0.0.1:{port}")) == (
        400,
        'module parameter: unknown module "banner"\n',
    )
    metrics = await get_metrics(client)
    assert metrics["sonde_probes_in_flight"] == 0
    assert metrics['sonde_probes_total{module="banner",result="success"}'] == 1


async def test_config_is_the_effective_yaml(exporter_client):
    client = await exporter_client(CONFIG)
    response = await client.get("/config")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    assert "modules:\n  tcp:\n    prober: tcp\n    timeout: 2s\n" in text
    assert "timeout: 3s" in text
    assert "expect: ^hello" in text
    assert "preferred_ip_protocol: ip4" in text  # defaults are shown: it is the effective config


class _SmtpAuth(BaseModel):
    username: str
    password: Secret


class _ConfigWithSecrets(Config):
    """Stands in for a config holding passwords until the email prober lands."""

    auth: dict[str, _SmtpAuth]


async def test_config_shows_secrets_as_placeholder(exporter_client):
    client = await exporter_client(CONFIG)
    client.exporter.config = _ConfigWithSecrets.model_validate(
        {
            "modules": {"tcp": {"prober": "tcp"}},
            "auth": {"mail": {"username": "probe", "password": "hunter2"}},
        }
    )
    text = await (await client.get("/config")).text()
    assert "password: <secret>" in text
    assert "username: probe" in text
    assert "hunter2" not in text


FOREIGN_CONFIG = """
modules:
  tcp:
    prober: tcp
  web:
    prober: http
    http:
      basic_auth: {username: u, password: hunter2}
  resolver:
    prober: dns
    dns: {query_name: example.com}
"""


async def test_unsupported_modules_are_shown_and_refused(exporter_client, write_config, caplog):
    client = await exporter_client(FOREIGN_CONFIG)
    metrics = await get_metrics(client)
    assert {k: v for k, v in metrics.items() if k.startswith("sonde_config_unsupported")} == {
        'sonde_config_unsupported_module_info{module="web",prober="http"}': 1,
        'sonde_config_unsupported_module_info{module="resolver",prober="dns"}': 1,
    }
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        "Modules with a prober sonde-exporter does not have; probing them answers 400"
    ]
    assert dict(warnings[0].fields)["modules"] == "web (http), resolver (dns)"
    status, body = await probe(client, module="resolver", target="127.0.0.1")
    assert (status, body) == (
        400,
        'module parameter: module "resolver" uses the dns prober, which only blackbox_exporter has\n',
    )
    assert len(client.exporter.history) == 0
    config = await (await client.get("/config")).text()
    assert "  web:\n    prober: http\n    timeout: 0s\n  resolver:" in config
    assert "hunter2" not in config and "basic_auth" not in config
    assert "<li><code>web</code> (http, not supported)</li>" in await (await client.get("/")).text()

    caplog.clear()
    write_config(CONFIG)
    assert (await client.post("/-/reload")).status == 200
    assert not any(k.startswith("sonde_config_unsupported") for k in await get_metrics(client))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


async def test_healthy_and_ready(exporter_client):
    client = await exporter_client(CONFIG)
    for path, text in (("/-/healthy", "Healthy\n"), ("/-/ready", "Ready\n")):
        response = await client.get(path)
        assert (response.status, await response.text()) == (200, text)
        assert (await client.head(path)).status == 200


async def test_metrics_has_probe_counters_histogram_and_build_info(exporter_client, ok_and_refused):
    ok, refused = ok_and_refused
    client = await exporter_client(CONFIG)
    await probe(client, module="tcp", target=ok)
    await probe(client, module="tcp", target=refused)
    await probe(client, module="tcp", target=refused)
    await probe(client, module="nope", target="127.0.0.1:1")
    await probe(client, module="tcp", target="no port")  # a bad request is not a probe
    response = await client.get("/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    metrics = parse_metrics(await response.text())
    assert metrics['sonde_probes_total{module="tcp",result="success"}'] == 1
    assert metrics['sonde_probes_total{module="tcp",result="failure"}'] == 2
    assert metrics['sonde_probe_duration_seconds_count{module="tcp"}'] == 3
    assert metrics['sonde_probe_duration_seconds_bucket{le="+Inf",module="tcp"}'] == 3
    assert 0 < metrics['sonde_probe_duration_seconds_sum{module="tcp"}'] < 3
    assert metrics["sonde_probes_in_flight"] == 0
    assert metrics["sonde_module_unknown_total"] == 1
    assert metrics["sonde_config_last_reload_successful"] == 1
    assert abs(metrics["sonde_config_last_reload_success_timestamp_seconds"] - time.time()) < 60
    python = platform.python_version()
    build = f'sonde_exporter_build_info{{python_version="{python}",version="{__version__}"}}'
    assert metrics[build] == 1
    assert metrics["process_resident_memory_bytes"] > 0
    assert "process_cpu_seconds_total" in metrics
    assert not any(name.endswith("_created") for name in metrics)


async def test_metrics_are_gzipped_for_scrapers_that_ask(exporter_client):
    client = await exporter_client(CONFIG)
    response = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert "sonde_probes_in_flight" in parse_metrics(await response.text())
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers


async def test_status_page_lists_modules_and_recent_probes(exporter_client, ok_and_refused):
    ok, refused = ok_and_refused
    client = await exporter_client(CONFIG)
    await probe(client, module="tcp", target=ok)
    await probe(client, module="banner", target=refused)
    response = await client.get("/")
    page = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert "<li><code>tcp</code> (tcp)</li>" in page
    assert "<li><code>banner</code> (tcp)</li>" in page
    newest, older = page.index(refused), page.index(ok)
    assert newest < older  # newest first
    assert "Failure: connect_refused" in page and "Success" in page
    assert '<a href="logs?id=2">' in page and '<a href="logs?id=1">' in page
    logs = await client.get("/logs", params={"id": "2"})
    assert logs.status == 200 and logs.content_type == "text/plain"
    assert "reason=connect_refused" in await logs.text()


async def test_status_page_escapes_targets_and_module_names(exporter_client):
    client = await exporter_client(
        """
        modules:
          "<b>bold</b>":
            prober: tcp
        """
    )
    client.exporter.history.add(
        ProbeResult(
            id=client.exporter.history.next_id(),
            module="<b>bold</b>",
            target="<script>alert(1)</script>:25",
            success=False,
            reason=None,
            duration=0.001,
            started=time.time(),
            log=(),
        )
    )
    page = await (await client.get("/")).text()
    assert "<script>" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;:25" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


async def test_logs_by_id_and_by_target(exporter_client, closed_port):
    client = await exporter_client(CONFIG)
    target = f"127.0.0.1:{closed_port}"
    await probe(client, module="tcp", target=target)
    await probe(client, module="banner", target=target)

    async def logs(**params: str) -> tuple[int, str]:
        response = await client.get("/logs", params=params)
        return response.status, await response.text()

    status, text = await logs(id="1")
    assert status == 200 and "module=tcp" not in text and "Beginning probe" in text
    status, text = await logs(target=target)  # the newest probe of that target
    assert status == 200 and "timeout_seconds=3" in text
    status, text = await logs(target=target, module="tcp")
    assert status == 200 and "timeout_seconds=2" in text
    assert await logs() == (400, "id or target parameter: give exactly one\n")
    assert await logs(id="1", target=target) == (400, "id or target parameter: give exactly one\n")
    assert await logs(id="1", module="tcp") == (400, "module parameter: only goes with target\n")
    for bad in ("x", "-1", "1.0", "", "²", "9" * 5000):
        assert await logs(id=bad) == (400, "id parameter: must be a number\n"), bad
    assert await logs(id="99") == (404, "probe not found in the history\n")
    assert await logs(target="127.0.0.1:1") == (404, "probe not found in the history\n")
    assert await logs(target=target, module="nope") == (404, "probe not found in the history\n")


async def test_history_is_bounded_and_keeps_failures_longer(exporter_client, ok_and_refused):
    ok, bad = ok_and_refused
    client = await exporter_client(CONFIG, history_limit=2)
    await probe(client, module="tcp", target=bad)  # id 1
    for _ in range(5):  # ids 2-6
        await probe(client, module="tcp", target=ok)
    history = client.exporter.history
    assert [r.id for r in history] == [6, 5, 1]  # two recent, and the failure kept
    assert (await client.get("/logs", params={"id": "1"})).status == 200
    assert (await client.get("/logs", params={"id": "2"})).status == 404
    for _ in range(4):  # ids 7-10: failures push out everything older
        await probe(client, module="tcp", target=bad)
    assert [r.id for r in history] == [10, 9, 8, 7]
    page = await (await client.get("/")).text()
    assert page.count("<tr>") == 1 + 4  # header row and four probes


async def test_history_limit_zero_keeps_nothing(exporter_client, closed_port):
    client = await exporter_client(CONFIG, history_limit=0)
    status, _ = await probe(client, module="tcp", target=f"127.0.0.1:{closed_port}")
    assert status == 200
    assert len(client.exporter.history) == 0
    assert (await client.get("/logs", params={"id": "1"})).status == 404
