"""The IP filter where packets would leave the machine: the cloud metadata default, ICMP and
traceroute_on_error, the unspecified address, 0.0.0.0/8 and IPv6 addresses that embed an
IPv4 one (NAT64, 6to4, IPv4-compatible), in a network namespace of the test's own
(icmp_netns_runner.py).

The namespace has loopback and a TUN device whose responder answers echo requests for the
addresses below and counts every request it sees, the metadata addresses included, so "no
packet" is counted rather than assumed; the TUN also carries 64:ff9b::/96, 2002:7f00:1::/48
and ::/96, so an echo request to an embedding address would reach the responder too (the
allowed ones show it does). Nothing can leave the namespace. Needs root.
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
  icmp_public:  # the README's tcp_public deny-list
    prober: icmp
    timeout: 2s
    icmp: {count: 1}
    ip_filter: &public
      denied: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, "::1", "fc00::/7"]
  traced_public:
    prober: icmp
    timeout: 3s
    icmp: {count: 1}
    traceroute_on_error: true
    traceroute: {max_hops: 4}
    ip_filter: *public
  tcp_public:
    prober: tcp
    timeout: 2s
    ip_filter: *public
"""
EMBEDDING = ["64:ff9b::7f00:1", "2002:7f00:1::1", "::7f00:1"]
"""127.0.0.1 through NAT64, 6to4 and the IPv4-compatible form."""
RESPONDER = {
    "interface": "sonde0",
    "ipv4": "198.18.0.1/24",
    "ipv6": "2001:db8::1/64",
    "extra": [
        "169.254.0.1/16",
        "fd00:ec2::1/64",
        "64:ff9b::ff/96",
        "2002:7f00:1::ff/48",
        "::7f00:ff/96",
    ],
    "hosts": {
        "169.254.169.254": {},
        "fd00:ec2::254": {},
        "198.18.0.3": {},
        "198.18.0.5": {"silent": True},
        "198.18.0.6": {"silent": True},
        **{address: {} for address in EMBEDDING},
    },
}
METADATA = "cloud metadata address"
DENIED_RULE = "ip_filter denied"
LOOPBACK_V4 = "(read as 127.0.0.1) is denied: ip_filter denied: 127.0.0.0/8"
LOOPBACK_V6 = "(read as ::1) is denied: ip_filter denied: ::1/128"
NOT_A_DESTINATION = "is denied: not a destination (0.0.0.0/8 but 0.0.0.0"
DENIED = [
    ("icmp", "169.254.169.254", METADATA),
    ("icmp", "fd00:ec2::254", METADATA),
    ("icmp", "[fd00:ec2::254]", METADATA),
    ("icmp", "::ffff:169.254.169.254", METADATA),
    ("icmp", "::ffff:a9fe:a9fe", METADATA),
    ("icmp", "64:ff9b::a9fe:a9fe", METADATA),
    ("icmp_allow_all", "169.254.169.254", METADATA),
    ("icmp_allow_all", "fd00:ec2::254", METADATA),
    ("tcp", "169.254.169.254:80", METADATA),
    ("tcp", "[::ffff:169.254.169.254]:80", METADATA),
    ("tcp", "[fd00:ec2::254]:80", METADATA),
    ("tcp", "[2002:a9fe:a9fe::1]:80", METADATA),
    ("traced", "198.18.0.3", DENIED_RULE),
    ("traced", "198.18.0.6", DENIED_RULE),
    *(("icmp_public", host, LOOPBACK_V4) for host in ("0.0.0.0", "::ffff:0.0.0.0", "::ffff:0:0")),
    *(("icmp_public", host, LOOPBACK_V6) for host in ("::", "[::]", "0::")),
    *(("icmp_public", host, LOOPBACK_V4) for host in EMBEDDING),
    *(("traced_public", host, LOOPBACK_V4) for host in ("0.0.0.0", *EMBEDDING)),
    ("traced_public", "::", LOOPBACK_V6),
    *(("tcp_public", f"[{host}]:80", LOOPBACK_V4) for host in EMBEDDING),
    *(
        ("icmp_allow_all", host, NOT_A_DESTINATION)
        for host in ("0.0.0.1", "0.1.2.3", "::ffff:0.0.0.5")
    ),
    ("tcp", "0.255.255.255:80", NOT_A_DESTINATION),
    ("icmp_allow_all", "64:ff9b::1", NOT_A_DESTINATION),
]
ALLOWED = [
    ("icmp_metadata", "169.254.169.254"),
    ("icmp_metadata", "fd00:ec2::254"),
    ("traced", "198.18.0.5"),  # allowed, silent: fails, and its traceroute is sent
    # Allowed, an embedding address is probed: the TUN carries it, so a denied one would
    # have been counted there.
    *(("icmp_allow_all", host) for host in EMBEDDING),
]


def test_metadata_and_denied_addresses_get_no_packet() -> None:
    out = run_in_netns(
        {
            "ping_group_range": "1 0",  # raw sockets, as root
            "user": "root",
            "config": CONFIG,
            "responder": RESPONDER,
            "batches": [
                [{"module": m, "target": t} for m, t, _ in DENIED],
                [{"module": m, "target": t, "debug": "true"} for m, t in ALLOWED],
            ],
        }
    )
    results = out["results"]
    seen = out["helpers"]["responder"]
    for (module, target, reason), result in zip(DENIED, results, strict=False):
        assert result["status"] == 403, (module, target, result)
        assert result["body"].count("\n") == 1
        assert reason in result["body"], (module, target, result["body"])
    # Named in `allowed`, the metadata addresses are probed: the responder answers, and counts
    # exactly the one request of each allowed probe, none of the denied ones.
    metadata_v4, metadata_v6, silent, *embedding = results[len(DENIED) :]
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
    # Each embedding address saw exactly its allowed probe's one request: the denied probes,
    # their traceroutes and the TCP ones sent it nothing.
    for host, result in zip(EMBEDDING, embedding, strict=True):
        assert seen[host]["requests"] == 1, (host, seen[host])
        # The responder's reply from an IPv4-compatible source did not reach the prober on
        # this kernel (6.18): only the request matters here, so its success is not asserted.
        if host != "::7f00:1":
            assert "probe_success 1" in result["body"], (host, result["body"])
    # Refused requests are no probes: none of them counted among the probes run.
    metrics = parse_metrics(out["metrics"])
    probes = sum(v for k, v in metrics.items() if k.startswith("sonde_probes_total"))
    assert probes == len(ALLOWED)
