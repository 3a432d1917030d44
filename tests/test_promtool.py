"""`promtool check metrics` (Debian's prometheus package) accepts everything we expose.

promtool is installed by .ci/install-system-deps; without it these tests fail, never skip.
"""

from __future__ import annotations

import asyncio

import pytest
from helpers import promtool_check

pytestmark = pytest.mark.prometheus

CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: 2s
  tls_banner:
    prober: tcp
    timeout: 2s
    tcp:
      tls: true
      tls_config:
        ca_file: {ca_file}
      query_response:
        - expect: "^SSH-2.0-(\\\\S+)"
          labels:
            - name: version
              value: "${{1}}"
        - send: "bye\\r"
"""


@pytest.fixture
async def tls_banner_port(tcp_server, pki):
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
        await writer.drain()
        await reader.readline()
        writer.close()

    return await tcp_server(banner, ssl=pki.server_context()), pki.ca_file


async def test_probe_output_passes_promtool(
    exporter_client, tcp_server, closed_port, tls_banner_port
):
    port, ca_file = tls_banner_port
    client = await exporter_client(CONFIG.format(ca_file=ca_file))
    bodies = {}
    for name, module, target in (
        ("tls success", "tls_banner", f"localhost:{port}"),
        ("failure", "tcp", f"127.0.0.1:{closed_port}"),
    ):
        response = await client.get("/probe", params={"module": module, "target": target})
        bodies[name] = await response.text()
    assert "probe_success 1" in bodies["tls success"]
    assert 'probe_expect_info{version="OpenSSH_9.2p1"} 1' in bodies["tls success"]
    assert "probe_ssl_earliest_cert_expiry" in bodies["tls success"]
    assert 'probe_failure_reason{reason="connect_refused"} 1' in bodies["failure"]
    for body in bodies.values():
        promtool_check(body)


async def test_metrics_output_passes_promtool(exporter_client, closed_port):
    client = await exporter_client("modules:\n  tcp:\n    prober: tcp\n")
    await client.get("/probe", params={"module": "tcp", "target": f"127.0.0.1:{closed_port}"})
    await client.get("/probe", params={"module": "nope", "target": "127.0.0.1:1"})
    promtool_check(await (await client.get("/metrics")).text())
