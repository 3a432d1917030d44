"""The IP filter where packets would leave the machine: the cloud metadata default, ICMP and
traceroute_on_error, in a network namespace of the test's own (icmp_netns_runner.py).

The namespace has loopback and a TUN device whose responder answers echo requests for the
addresses below and counts every request it sees, the metadata addresses included, so "no
packet" is counted rather than assumed; nothing can leave the namespace. Needs root.
"""

from __future__ import annotations

import pytest
from helpers import parse_metrics
from netns import run_in_netns

pytestmark = pytest.mark.root


CONFIG = """
modules:
  icmp:
    prober: icmp
    timeout: 2s
    icmp: {count: 1}
  icmp_allow_all:
    prober: icmp
    timeout: 2s
    icmp: {count: 1}
    ip_filter: {default: allow}
  icmp_metadata:
    prober: icmp
    timeout: 2s
    icmp: {count: 1}
    ip_filter: {allowed: [169.254.169.254, "fd00:ec2::254"]}
  traced:
    prober: icmp
    timeout: 3s
    icmp: {count: 1}
    traceroute_on_error: true
    traceroute: {max_hops: 4}
    ip_filter: {denied: [198.18.0.3, 198.18.0.6]}
  tcp:
    prober: tcp
    timeout: 2s
"""
RESPONDER = {
    "interface": "sonde0",
    "ipv4": "198.18.0.1/24",
    "ipv6": "2001:db8::1/64",
    "extra": ["169.254.0.1/16", "fd00:ec2::1/64"],
    "hosts": {
        "169.254.169.254": {},
        "fd00:ec2::254": {},
        "198.18.0.3": {},
        "198.18.0.5": {"silent": True},
        "198.18.0.6": {"silent": True},
    },
}
DENIED = [
    ("icmp", "169.254.169.254"),
    ("icmp", "fd00:ec2::254"),
    ("icmp", "[fd00:ec2::254]"),
    ("icmp", "::ffff:169.254.169.254"),
    ("icmp", "::ffff:a9fe:a9fe"),
    ("icmp_allow_all", "169.254.169.254"),
    ("icmp_allow_all", "fd00:ec2::254"),
    ("tcp", "169.254.169.254:80"),
    ("tcp", "[::ffff:169.254.169.254]:80"),
    ("tcp", "[fd00:ec2::254]:80"),
    ("traced", "198.18.0.3"),
    ("traced", "198.18.0.6"),
]
ALLOWED = [
    ("icmp_metadata", "169.254.169.254"),
    ("icmp_metadata", "fd00:ec2::254"),
    ("traced", "198.18.0.5"),  # allowed, silent: fails, and its traceroute is sent
]


def test_metadata_and_denied_addresses_get_no_packet() -> None:
    out = run_in_netns(
        {
            "ping_group_range": "1 0",  # raw sockets, as root
            "user": "root",
            "config": CONFIG,
            "responder": RESPONDER,
            "batches": [
                [{"module": m, "target": t} for m, t in DENIED],
                [{"module": m, "target": t, "debug": "true"} for m, t in ALLOWED],
            ],
        }
    )
    results = out["results"]
    seen = out["helpers"]["responder"]
    for (module, target), result in zip(DENIED, results, strict=False):
        assert result["status"] == 403, (module, target, result)
        assert result["body"].count("\n") == 1
        reason = "cloud metadata address" if "198.18" not in target else "ip_filter denied"
        assert reason in result["body"], (module, target, result["body"])
    # Named in `allowed`, the metadata addresses are probed: the responder answers, and counts
    # exactly the one request of each allowed probe, none of the denied ones.
    metadata_v4, metadata_v6, silent = results[len(DENIED) :]
    for result in (metadata_v4, metadata_v6):
        assert result["status"] == 200
        assert "probe_success 1" in result["body"], result["body"]
    assert seen["169.254.169.254"]["requests"] == 1
    assert seen["fd00:ec2::254"]["requests"] == 1
    # A failed probe of an allowed address is traced (more requests than its one echo, with
    # low TTLs); the denied ones saw nothing, neither echo request nor traceroute.
    assert silent["status"] == 200
    assert "probe_success 0" in silent["body"]
    assert seen["198.18.0.5"]["requests"] > 1
    assert 1 in seen["198.18.0.5"]["request_ttls"]
    assert seen["198.18.0.3"]["requests"] == 0
    assert seen["198.18.0.6"]["requests"] == 0
    # Refused requests are no probes: none of them counted among the probes run.
    metrics = parse_metrics(out["metrics"])
    probes = sum(v for k, v in metrics.items() if k.startswith("sonde_probes_total"))
    assert probes == len(ALLOWED)
