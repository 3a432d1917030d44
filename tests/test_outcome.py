"""execute() returns the whole outcome of a probe: verdict, reason, timings, metrics,
attempts, degraded and the traceroute as data, the same values the metrics show."""

from __future__ import annotations

import asyncio

import pytest
from tcpservers import answer_ok

from sonde_exporter.config import parse_config
from sonde_exporter.probe_metrics import ProbeMetrics
from sonde_exporter.prober_base import ProbeContext, ProbeLog, Reason
from sonde_exporter.probers import get_prober
from sonde_exporter.probing import Outcome, Traceroutes, execute
from sonde_exporter.probing.execute import NOTHING_OBSERVED
from sonde_exporter.targets import parse_host_port

CONFIG = """
modules:
  plain:
    prober: tcp
    timeout: 3s
  slow:
    prober: tcp
    timeout: 3s
    degraded_response_time: 1ns
  retried:
    prober: tcp
    timeout: 3s
    retries: {max: 1, delay: 10ms, on: [network_error]}
    traceroute_on_error: true
    traceroute: {max_hops: 4, interval: 1h, budget: 1s}
"""


async def run(module_name: str, port: int, *, observe: bool = False) -> Outcome:
    module = parse_config(CONFIG, "config.yml").modules[module_name]
    ctx = ProbeContext(
        metrics=ProbeMetrics(),
        log=ProbeLog(),
        deadline=asyncio.get_running_loop().time() + module.timeout,
    )
    target = parse_host_port(f"127.0.0.1:{port}")
    prober = get_prober("tcp")
    return await execute(
        prober, target, module, ctx, module.timeout, observe=observe, traceroutes=Traceroutes()
    )


def samples(outcome: Outcome) -> dict[str, dict[tuple[str, ...], float]]:
    return {gauge.name: dict(values) for gauge, values in outcome.metrics.families()}


async def test_a_plain_probe_observes_nothing_and_a_monitor_gets_its_response_time(
    tcp_server,
) -> None:  # type: ignore[no-untyped-def]
    port = await tcp_server(answer_ok)
    plain = await run("plain", port)
    assert (plain.reason, plain.message, plain.attempts, plain.degraded) == (None, "", 1, False)
    assert plain.observed is NOTHING_OBSERVED and plain.traceroute is None
    assert samples(plain)["probe_success"] == {(): 1}
    assert samples(plain)["probe_duration_seconds"] == {(): plain.duration}
    checked = await run("plain", port, observe=True)
    assert checked.reason is None and 0 < checked.observed["response_time"] <= checked.duration


async def test_degraded_is_in_the_outcome_and_the_metrics(tcp_server) -> None:  # type: ignore[no-untyped-def]
    outcome = await run("slow", await tcp_server(answer_ok))
    assert outcome.reason is None and outcome.degraded is True
    assert samples(outcome)["probe_degraded"] == {(): 1}


@pytest.mark.root  # raw ICMP for the sweep
async def test_a_failure_carries_its_attempts_and_its_traceroute_as_data(closed_port) -> None:  # type: ignore[no-untyped-def]
    outcome = await run("retried", closed_port)
    assert outcome.reason is Reason.CONNECT_REFUSED and outcome.attempts == 2
    assert samples(outcome)["probe_attempts"] == {(): 2}
    trace = outcome.traceroute
    assert trace is not None and trace.target == "127.0.0.1" and trace.reached
    # the data returned is what the metrics show
    hops = samples(outcome)
    assert hops["probe_traceroute_hops"] == {(): len(trace.hops)}
    assert hops["probe_traceroute_hop_rtt_seconds"] == {
        (str(ttl), hop.address): hop.rtt for ttl, hop in enumerate(trace.hops, 1) if hop
    }
