"""The TCP prober against real loopback servers."""

from __future__ import annotations

import asyncio
import socket

from conftest import parse_metrics, probe

CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: 2s
"""


async def test_connect_to_open_port(exporter_client, tcp_server):
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    port = await tcp_server(accept)
    client = await exporter_client(CONFIG)
    status, body = await probe(client, module="tcp", target=f"127.0.0.1:{port}")
    metrics = parse_metrics(body)
    assert status == 200
    assert metrics["probe_success"] == 1
    assert metrics["probe_ip_protocol"] == 4
    assert 0 < metrics["probe_tcp_rtt_seconds"] < 0.1
    assert "probe_failure_reason" not in body


async def test_connect_to_closed_port_is_refused(exporter_client):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = await exporter_client(CONFIG)
    status, body = await probe(client, module="tcp", target=f"127.0.0.1:{port}")
    metrics = parse_metrics(body)
    assert status == 200
    assert metrics["probe_success"] == 0
    assert metrics['probe_failure_reason{reason="connect_refused"}'] == 1
