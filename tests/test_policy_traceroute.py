"""traceroute_on_error through /probe: a probe that fails for a network reason carries the path
to the address it probed; other failures and successes carry none. The sweep itself, hop by
hop against an emulated router chain, is tested in test_traceroute_netns.py."""

from __future__ import annotations

import asyncio

import pytest
from helpers import checked_probe, debug_text, failure_reason_series
from tcpservers import answer_ok

# Raw ICMP on the host (root), and every answer goes through promtool.
pytestmark = [pytest.mark.root, pytest.mark.prometheus]

CONFIG = """
modules:
  traced:
    prober: tcp
    timeout: 5s
    traceroute_on_error: true
    traceroute: {max_hops: 4, interval: 1h, budget: 1s}
  traced_from_v6:
    prober: tcp
    timeout: 5s
    tcp: {source_ip_address: "::1"}
    traceroute_on_error: true
  traced_expect:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^NEVER"
    traceroute_on_error: true
"""

HOP_1 = 'probe_traceroute_hop_rtt_seconds{address="127.0.0.1",hop="1"}'  # labels sorted


def traceroute_series(metrics: dict[str, float]) -> set[str]:
    return {key for key in metrics if key.startswith("probe_traceroute")}


async def test_a_refused_connection_carries_the_path_to_the_address(exporter_client, closed_port):
    client = await exporter_client(CONFIG)
    metrics, _ = await checked_probe(client, module="traced", target=f"127.0.0.1:{closed_port}")
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="connect_refused"}': 1}
    # Loopback is one hop away, and that hop is the target itself.
    assert traceroute_series(metrics) == {"probe_traceroute_hops", HOP_1}
    assert metrics["probe_traceroute_hops"] == 1
    assert 0 < metrics[HOP_1] < 1  # a loopback round trip, far below a second


async def test_a_second_failure_within_the_interval_reuses_the_sweep(exporter_client, closed_port):
    client = await exporter_client(CONFIG)
    target = f"127.0.0.1:{closed_port}"
    first = await debug_text(client, module="traced", target=target)
    second = await debug_text(client, module="traced", target=target)
    assert "Traceroute hop" in first and "Traceroute hop" in second
    # The same sweep answers both (interval 1h): the second says so and sent nothing new.
    assert "reused=True" in second
    started = [line for line in first.splitlines() if "msg=Traceroute " in line]
    assert started and started[0].split("started=")[1].split()[0] in second


async def test_a_successful_probe_traces_nothing(exporter_client, tcp_server):
    port = await tcp_server(answer_ok)
    client = await exporter_client(CONFIG)
    metrics, _ = await checked_probe(client, module="traced", target=f"127.0.0.1:{port}")
    assert metrics["probe_success"] == 1
    assert traceroute_series(metrics) == set()


async def greet_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"OK\r\n")
    await writer.drain()
    writer.close()


async def test_a_failure_that_is_not_the_network_traces_nothing(exporter_client, tcp_server):
    """The server answered, only not what the module expects: the path worked."""
    port = await tcp_server(greet_and_close)
    client = await exporter_client(CONFIG)
    metrics, _ = await checked_probe(client, module="traced_expect", target=f"127.0.0.1:{port}")
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="expect_mismatch"}': 1}
    assert traceroute_series(metrics) == set()


async def test_a_sweep_that_cannot_run_leaves_the_verdict_alone(exporter_client, closed_port):
    """An IPv6 source for an IPv4 target: the probe fails on its own, the sweep says why it
    could not run, and neither turns into an internal error."""
    client = await exporter_client(CONFIG)
    target = f"127.0.0.1:{closed_port}"
    metrics, _ = await checked_probe(client, module="traced_from_v6", target=target)
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="connect_error"}': 1}
    assert traceroute_series(metrics) == set()
    debug = await debug_text(client, module="traced_from_v6", target=target)
    assert "Traceroute could not run" in debug and "not of the target's IP version" in debug
