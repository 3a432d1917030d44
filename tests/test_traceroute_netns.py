"""Traceroute against a chain of emulated routers, in a network namespace of its own.

The TUN responder (icmp_netns_tools.py) puts routers in front of some addresses: a request
whose TTL (hop limit) runs out at hop k gets a Time Exceeded from the k-th router after
k * 5 ms; the rest reach the address, which answers after its own delay. Each socket mode
runs in its own namespace, as in test_icmp_netns.py (raw as root, datagram as nobody).
These tests need root and fail (never skip) without it.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import parse_metrics, promtool_check
from netns import MODES, NO_DATAGRAM, debug_metrics, run_in_netns

pytestmark = pytest.mark.root

MS = 0.001
# The issue's ±2 ms holds in bench/traceroute_rtt.py (at most +1.3 ms over 540 hops), but
# not always here: the RTT is the kernel's receive stamp minus a stamp taken right before
# sendmsg, and the responder runs with SCHED_FIFO, yet on this shared 2-core VM the responder
# was seen writing up to 5 ms late, and the echo tests of test_icmp_netns.py (the same ±2 ms)
# fail now and then with the responder on time (the exporter preempted between its send
# stamp and sendmsg, or the VM's CPU stolen). So the lower bound stays -2 ms (nothing makes
# an answer early) and the upper one adds the lateness the responder reports for that
# address and SLACK for the sender's side.
RTT_BOUND = 2 * MS
SLACK = 3 * MS

CHAIN = "198.18.0.20"  # 4 routers, then the target at hop 5
SILENT = "198.18.0.21"  # 3 routers, then a target that never answers
MUTE = "198.18.0.22"  # router 2 sends no Time Exceeded
CACHED = "198.18.0.23"  # asked for four times, swept once
ECHO = "198.18.0.30"  # echo probes while the sweeps run (shared socket, no cross-talk)
CHAIN6 = "2001:db8::20"  # 3 routers, then the target at hop 4


def routers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, count + 1)]


RESPONDER = {
    "interface": "trace0",
    "ipv4": "198.18.0.1/24",
    "ipv6": "2001:db8::1/64",
    "hosts": {
        CHAIN: {"routers": routers("198.18.0.20", 4), "hop_delay_ms": 5, "delays_ms": [25]},
        SILENT: {"routers": routers("198.18.0.21", 3), "hop_delay_ms": 5, "silent": True},
        MUTE: {
            "routers": routers("198.18.0.22", 3),
            "hop_delay_ms": 5,
            "mute_hops": [2],
            "delays_ms": [20],
        },
        CACHED: {"routers": routers("198.18.0.23", 1), "hop_delay_ms": 5, "delays_ms": [10]},
        ECHO: {"delays_ms": [20]},
        CHAIN6: {"routers": routers("2001:db8::20", 3), "hop_delay_ms": 5, "delays_ms": [20]},
    },
}
BUDGET = 0.5  # per_hop_timeout: how long a silent hop is waited for
ROUNDS = [
    [
        {"target": CHAIN, "max_hops": 8, "per_hop_timeout": BUDGET},
        {"target": SILENT, "max_hops": 6, "per_hop_timeout": BUDGET},
        # Joins the sweep above, but its own deadline comes first.
        {"target": SILENT, "max_hops": 6, "per_hop_timeout": BUDGET, "timeout": 0.1},
        {"target": MUTE, "max_hops": 6, "per_hop_timeout": BUDGET},
        {"target": CACHED, "max_hops": 4, "per_hop_timeout": BUDGET},
        {"target": CACHED, "max_hops": 4, "per_hop_timeout": BUDGET},  # joins the running one
        {"target": CHAIN6, "max_hops": 6, "per_hop_timeout": BUDGET},
    ],
    [
        {"target": CACHED, "max_hops": 4, "per_hop_timeout": BUDGET},  # within the interval
        {"target": CACHED, "max_hops": 4, "per_hop_timeout": BUDGET},
    ],
]
ECHO_CONFIG = """
modules:
  steady:
    prober: icmp
    timeout: 2s
    icmp: {count: 10, interval: 30ms}
"""


@pytest.fixture(scope="module", params=list(MODES))
def sweeps(request: pytest.FixtureRequest) -> dict[str, Any]:
    group_range, user = MODES[request.param]
    out = run_in_netns(
        {
            "ping_group_range": group_range,
            "user": user,
            "config": ECHO_CONFIG,
            "responder": RESPONDER,
            "traceroutes": {"interval": 60, "rounds": ROUNDS},
            "batches": [[{"module": "steady", "target": ECHO, "debug": "true"}] * 3],
        }
    )
    return {"mode": request.param, "out": out, "seen": out["helpers"]["responder"]}


def trace_of(sweeps: dict[str, Any], target: str) -> dict[str, Any]:
    return next(t for t in sweeps["out"]["traceroutes"] if t["params"]["target"] == target)


def check_hops(
    trace: dict[str, Any], expected: list[tuple[str, float] | None], late: float
) -> None:
    """Exactly the expected hops in order, each RTT within RTT_BOUND of the emulated delay."""
    assert trace["error"] is None
    addresses = [None if hop is None else hop[1] for hop in trace["hops"]]
    assert addresses == [None if e is None else e[0] for e in expected]
    for ttl, (hop, want) in enumerate(zip(trace["hops"], expected, strict=True), 1):
        if hop is None or want is None:
            continue
        assert hop[0] == ttl
        error = hop[2] - want[1] * MS
        assert -RTT_BOUND <= error <= RTT_BOUND + SLACK + late * MS, (
            f"hop {ttl}: {hop[2] * 1000:.3f} ms, emulated {want[1]} ms "
            f"(responder up to {late:.3f} ms late)"
        )


def test_every_router_then_the_target_in_order(sweeps: dict[str, Any]) -> None:
    trace = trace_of(sweeps, CHAIN)
    assert trace["mode"] == sweeps["mode"]
    expected = [(router, 5.0 * k) for k, router in enumerate(routers("198.18.0.20", 4), 1)]
    check_hops(trace, [*expected, (CHAIN, 25.0)], sweeps["seen"][CHAIN]["max_late_ms"])
    assert trace["reached"] is True
    # Hops beyond the target are dropped; every answer came, so no waiting for the budget.
    assert sweeps["seen"][CHAIN]["requests"] == 8
    assert trace["duration"] < BUDGET


def test_ipv6_hop_limit_sweep(sweeps: dict[str, Any]) -> None:
    trace = trace_of(sweeps, CHAIN6)
    expected = [(router, 5.0 * k) for k, router in enumerate(routers("2001:db8::20", 3), 1)]
    check_hops(trace, [*expected, (CHAIN6, 20.0)], sweeps["seen"][CHAIN6]["max_late_ms"])
    assert trace["reached"] is True


def test_a_silent_target_still_shows_the_routers_before_it(sweeps: dict[str, Any]) -> None:
    trace = trace_of(sweeps, SILENT)
    expected = [(router, 5.0 * k) for k, router in enumerate(routers("198.18.0.21", 3), 1)]
    check_hops(trace, expected, sweeps["seen"][SILENT]["max_late_ms"])
    assert trace["reached"] is False
    assert sweeps["seen"][SILENT]["requests"] == 6  # TTL 4..6 reached the silent target
    assert BUDGET <= trace["duration"] < BUDGET + 0.25  # waited for hops 4..6, no longer


def test_a_probe_whose_deadline_comes_first_does_not_wait(sweeps: dict[str, Any]) -> None:
    starter, joiner = (t for t in sweeps["out"]["traceroutes"] if t["params"]["target"] == SILENT)
    assert "hops" not in joiner and joiner["metrics"] == ""
    assert joiner["log"] == [
        ["debug", "Traceroute still running for another probe of this target", {}]
    ]
    assert starter["reused"] is False and len(starter["hops"]) == 3


def test_a_router_without_time_exceeded_is_a_missing_hop(sweeps: dict[str, Any]) -> None:
    trace = trace_of(sweeps, MUTE)
    r1, _, r3 = routers("198.18.0.22", 3)
    check_hops(
        trace, [(r1, 5.0), None, (r3, 15.0), (MUTE, 20.0)], sweeps["seen"][MUTE]["max_late_ms"]
    )
    assert trace["reached"] is True
    metrics = parse_metrics(trace["metrics"])
    assert metrics["probe_traceroute_hops"] == 4
    series = {k for k in metrics if k.startswith("probe_traceroute_hop_rtt_seconds")}
    assert series == {  # parse_metrics sorts the labels
        f'probe_traceroute_hop_rtt_seconds{{address="{address}",hop="{hop}"}}'
        for hop, address in ((1, r1), (3, r3), (4, MUTE))
    }
    hop_lines = [fields for _, message, fields in trace["log"] if message == "Traceroute hop"]
    assert [line["address"] for line in hop_lines] == [r1, "*", r3, MUTE]


def test_one_sweep_per_target_within_the_interval(sweeps: dict[str, Any]) -> None:
    cached = [t for t in sweeps["out"]["traceroutes"] if t["params"]["target"] == CACHED]
    assert len(cached) == 4
    assert sweeps["seen"][CACHED]["requests"] == 4  # max_hops requests: one sweep, not four
    assert sorted(t["reused"] for t in cached) == [False, True, True, True]
    assert all(t["hops"] == cached[0]["hops"] for t in cached)
    assert [hop[1] for hop in cached[0]["hops"]] == ["198.18.0.231", CACHED]


def test_metrics_pass_promtool(sweeps: dict[str, Any]) -> None:
    for trace in sweeps["out"]["traceroutes"]:
        promtool_check(trace["metrics"])


def test_echo_probes_on_the_same_socket_are_unaffected(sweeps: dict[str, Any]) -> None:
    # In datagram mode each Time Exceeded also leaves a pending socket error, which the
    # next send on the shared socket reports: the endpoint retries that send once.
    for result in sweeps["out"]["results"]:
        m = debug_metrics(result["body"])
        assert m["probe_success"] == 1, result["body"]
        assert m["probe_icmp_packets_received"] == 10
        late = sweeps["seen"][ECHO]["max_late_ms"]
        for stat in ("min", "max"):
            rtt = m[f'probe_icmp_rtt_seconds{{stat="{stat}"}}']
            error = rtt - 20 * MS
            assert -RTT_BOUND <= error <= RTT_BOUND + SLACK + late * MS, f"{stat} {rtt}, {late} ms"


def test_nothing_left_open(sweeps: dict[str, Any]) -> None:
    out, mode = sweeps["out"], sweeps["mode"]
    expected = sorted([f"{mode}4", f"{mode}6"])
    assert sorted(out["new_fds_after"]) == expected  # the shared sockets only
    exporter = parse_metrics(out["metrics"])
    assert exporter['sonde_icmp_receive_drops_total{ip_protocol="ip4"}'] == 0


def test_without_permission_the_reason_is_reported() -> None:
    out = run_in_netns(
        {
            "ping_group_range": NO_DATAGRAM,
            "user": "nobody",
            "config": "modules: {}\n",
            "traceroutes": {"rounds": [[{"target": "127.0.0.1", "max_hops": 4}]]},
            "batches": [],
        }
    )
    (trace,) = out["traceroutes"]
    assert trace["hops"] == [] and trace["reached"] is False
    assert trace["mode"] == "none"
    assert "traceroute cannot run: no permission to open ICMP sockets" in trace["error"]
    assert "ping_group_range" in trace["error"] and "CAP_NET_RAW" in trace["error"]
    assert trace["metrics"] == ""  # no series: "could not run" is not "nobody answered"
    assert [(level, message) for level, message, _ in trace["log"]] == [
        ("warn", "Traceroute could not run")
    ]
    assert out["new_fds_after"] == []
