"""Traceroute in the test process: loopback sweeps, the per-target cache, and the rendering.

The sweeps use whichever ICMP socket this host allows (the root tests run raw); the router
chain, both socket modes and the permission errors are in test_traceroute_netns.py.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest
from helpers import parse_metrics, promtool_check

from sonde_exporter.icmp import linux
from sonde_exporter.icmp.endpoint import SocketMode
from sonde_exporter.icmp.sockets import SOCKETS
from sonde_exporter.icmp.traceroute import Hop, Traceroute, traceroute
from sonde_exporter.icmp.traceroute_cache import TracerouteCache, TracerouteResult
from sonde_exporter.icmp.traceroute_report import record_traceroute
from sonde_exporter.probe_metrics import ProbeMetrics
from sonde_exporter.prober_base import ProbeLog


@pytest.fixture(autouse=True)
def icmp_available() -> Iterator[None]:
    if SOCKETS.support(socket.AF_INET).mode is SocketMode.NONE:
        pytest.fail("these tests need an ICMP socket (root, or ping_group_range)")
    yield
    SOCKETS.close()


def sweep(ip: str, max_hops: int = 4, timeout: float = 2.0) -> Traceroute:
    async def run() -> Traceroute:
        deadline = asyncio.get_running_loop().time() + timeout
        return await traceroute(ip, max_hops=max_hops, deadline=deadline)

    return asyncio.run(run())


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "0:0::1"])
def test_loopback_is_reached_at_hop_one(ip: str) -> None:
    trace = sweep(ip)
    canonical = "::1" if ":" in ip else ip
    assert trace.error is None
    assert trace.reached is True
    assert trace.target == canonical
    (hop,) = trace.hops  # the requests with TTL 2..4 reached it too, and were dropped
    assert hop is not None and (hop.ttl, hop.address) == (1, canonical)
    assert 0 < hop.rtt < 0.1
    assert trace.duration < 1.0  # every hop answered: no waiting for the budget


def test_the_sweep_leaves_the_shared_socket_as_echo_probes_need_it() -> None:
    sweep("127.0.0.1")
    endpoint = SOCKETS.endpoint(socket.AF_INET)
    assert endpoint._table == {}  # every sequence number released
    if endpoint.mode is SocketMode.RAW:  # echo replies only again (bit set = filtered out)
        mask = struct.unpack("@I", endpoint.sock.getsockopt(linux.SOL_RAW, linux.ICMP_FILTER, 4))
        assert mask[0] == 0xFFFFFFFF & ~1
    else:  # no error queue again
        assert endpoint.sock.getsockopt(socket.IPPROTO_IP, linux.IP_RECVERR) == 0


@pytest.mark.parametrize(
    ("ip", "timeout", "error"),
    [
        ("example.com", 2.0, "traceroute target 'example.com' is not an IP address"),
        ("127.0.0.1", 0.0, "no time left before the probe's deadline"),
        ("::1", -1.0, "no time left before the probe's deadline"),
    ],
)
def test_what_stops_a_sweep_is_reported_not_raised(ip: str, timeout: float, error: str) -> None:
    trace = sweep(ip, timeout=timeout)
    assert (trace.error, trace.hops, trace.reached) == (error, (), False)


def test_the_cache_sweeps_a_target_once_per_interval() -> None:
    async def run() -> list[TracerouteResult | None]:
        cache = TracerouteCache(interval=60)
        deadline = asyncio.get_running_loop().time() + 2
        first = await asyncio.gather(  # the second joins the running sweep
            cache.get("127.0.0.1", max_hops=3, deadline=deadline),
            cache.get("127.0.0.1", max_hops=3, deadline=deadline),
        )
        later = await cache.get("127.0.0.1", max_hops=3, deadline=deadline)
        other = await cache.get("127.0.0.2", max_hops=3, deadline=deadline)
        return [*first, later, other]

    first, joined, later, other = asyncio.run(run())
    assert first is not None and joined is not None and later is not None and other is not None
    assert (first.reused, joined.reused, later.reused, other.reused) == (False, True, True, False)
    assert first.trace is joined.trace is later.trace  # one sweep
    assert other.trace.target == "127.0.0.2"


def test_the_cache_sweeps_again_after_the_interval_and_forgets_the_oldest() -> None:
    async def run() -> tuple[list[bool], int]:
        cache = TracerouteCache(interval=0.05, max_targets=2)
        deadline = asyncio.get_running_loop().time() + 2
        reused = []
        for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.1"):
            result = await cache.get(ip, max_hops=2, deadline=deadline)
            assert result is not None
            reused.append(result.reused)
        await asyncio.sleep(0.06)
        result = await cache.get("127.0.0.1", max_hops=2, deadline=deadline)
        assert result is not None
        reused.append(result.reused)
        return reused, len(cache)

    reused, size = asyncio.run(run())
    # .1 was forgotten when .3 came in (at most 2 targets); .2 was still there.
    assert reused == [False, False, False, True, False, False]
    assert size == 2


def test_a_sweep_that_sent_nothing_does_not_hold_the_target() -> None:
    async def run() -> list[tuple[bool, int]]:
        cache = TracerouteCache(interval=60)
        now = asyncio.get_running_loop().time()
        results = []
        for deadline in (now, now + 2, now + 2):  # no time left, then a real sweep
            result = await cache.get("127.0.0.1", max_hops=2, deadline=deadline)
            assert result is not None
            results.append((result.reused, result.trace.sent))
        return results

    assert asyncio.run(run()) == [(False, 0), (False, 2), (True, 2)]


def rendered(trace: Traceroute, reused: bool = False) -> tuple[str, ProbeLog]:
    metrics, log = ProbeMetrics(), ProbeLog()
    record_traceroute(TracerouteResult(trace, reused), metrics, log)
    return metrics.render(), log


def a_trace(hops: tuple[Hop | None, ...], reached: bool, error: str | None = None) -> Traceroute:
    sent = 8 if hops else 0
    return Traceroute("198.18.0.20", hops, reached, 8, sent, 1.8e9, 0.03, SocketMode.RAW, error)


def test_metrics_have_one_series_per_answering_hop() -> None:
    text, log = rendered(
        a_trace((Hop(1, "198.18.0.201", 0.005), None, Hop(3, "198.18.0.20", 0.015)), True)
    )
    promtool_check(text)
    assert parse_metrics(text) == {
        "probe_traceroute_hops": 3,
        'probe_traceroute_hop_rtt_seconds{address="198.18.0.201",hop="1"}': 0.005,
        'probe_traceroute_hop_rtt_seconds{address="198.18.0.20",hop="3"}': 0.015,
    }
    summary, *hops = log.lines
    assert summary.message == "Traceroute"
    assert dict(summary.fields)["reached"] is True
    assert [dict(line.fields)["address"] for line in hops] == ["198.18.0.201", "*", "198.18.0.20"]


def test_a_sweep_that_could_not_run_adds_no_series() -> None:
    text, log = rendered(a_trace((), False, "traceroute cannot run: no permission"))
    assert text == ""
    (line,) = log.lines
    assert (line.level, line.message) == ("warn", "Traceroute could not run")
    assert dict(line.fields)["err"] == "traceroute cannot run: no permission"


def test_a_sweep_still_running_elsewhere_is_said_so() -> None:
    metrics, log = ProbeMetrics(), ProbeLog()
    record_traceroute(None, metrics, log)
    assert metrics.render() == ""
    assert [line.message for line in log.lines] == [
        "Traceroute still running for another probe of this target"
    ]
