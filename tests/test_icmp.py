"""The ICMP prober in the test process: its config block, its targets, and real probes of
the host's loopback (with whichever socket mode this host allows; the namespace tests in
test_icmp_netns.py pin each mode down)."""

from __future__ import annotations

import ipaddress
import random
import socket
import struct

import pytest
from helpers import parse_metrics, probe, promtool_check
from hypothesis import given
from hypothesis import strategies as st

from sonde_exporter.config import ConfigError, IcmpModule, parse_config
from sonde_exporter.icmp.endpoint import EchoExchange, Endpoint, SocketMode
from sonde_exporter.icmp.packets import echo_checksum, ones_sum
from sonde_exporter.prober_base import TargetError
from sonde_exporter.targets import parse_host

CONFIG = """
modules:
  icmp:
    prober: icmp
    timeout: 2s
    icmp:
      interval: 10ms
  icmp6:
    prober: icmp
    timeout: 2s
    icmp:
      preferred_ip_protocol: ip6
      count: 4
      interval: 10ms
  icmp_v6_only:
    prober: icmp
    timeout: 2s
    icmp:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
  slow:
    prober: icmp
    icmp:
      count: 10
      interval: 1s
"""


def test_defaults() -> None:
    config = parse_config("modules:\n  ping:\n    prober: icmp\n", "c.yml")
    icmp = config.modules["ping"].icmp
    assert icmp == IcmpModule()
    assert (icmp.count, icmp.interval, icmp.payload_size) == (3, 0.1, 56)
    assert (icmp.ttl, icmp.dont_fragment, icmp.max_packet_loss_ratio) == (None, False, None)
    assert (icmp.preferred_ip_protocol, icmp.ip_protocol_fallback) == ("ip4", True)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("count: 0", "icmp.count: expected greater than or equal to 1"),
        ("count: 101", "icmp.count: expected less than or equal to 100"),
        ("count: 2.5", "icmp.count: expected a valid integer"),
        ("payload_size: -1", "icmp.payload_size: expected greater than or equal to 0"),
        ("payload_size: 65508", "icmp.payload_size: expected less than or equal to 65507"),
        ("ttl: 0", "icmp.ttl: expected greater than or equal to 1"),
        ("ttl: 256", "icmp.ttl: expected less than or equal to 255"),
        ("interval: 2m", "icmp.interval: must be from 0s to 1m"),
        ("interval: -1s", "icmp.interval: duration '-1s' must not be negative"),
        ("interval: 5", "icmp.interval: expected a duration string"),
        ("max_packet_loss_ratio: 1.5", "icmp.max_packet_loss_ratio: expected less than or equal"),
        ("max_packet_loss_ratio: -0.1", "icmp.max_packet_loss_ratio: expected greater than or"),
        ("source_ip_address: eth0", "icmp.source_ip_address: 'eth0' is not an IP address"),
        ("preferred_ip_protocol: ip5", "icmp.preferred_ip_protocol: 'ip5' is not valid"),
        ("size: 10", "icmp.size: unknown field"),
    ],
)
def test_out_of_range_options_are_config_errors(option: str, message: str) -> None:
    text = f"modules:\n  ping:\n    prober: icmp\n    icmp:\n      {option}\n"
    with pytest.raises(ConfigError) as error:
        parse_config(text, "c.yml")
    assert f"c.yml:5: modules.ping.{message}" in str(error.value)


def test_packets_must_fit_the_module_timeout() -> None:
    text = "modules:\n  ping:\n    prober: icmp\n    timeout: 2s\n    icmp:\n      count: 5\n"
    parse_config(text + "      interval: 400ms\n", "c.yml")
    with pytest.raises(ConfigError, match=r"sending 5 echo requests 0\.5s apart takes 2s"):
        parse_config(text + "      interval: 500ms\n", "c.yml")


def test_icmp_module_cannot_carry_a_tcp_block() -> None:
    text = "modules:\n  ping:\n    prober: icmp\n    tcp: {}\n"
    with pytest.raises(ConfigError, match="cannot have a 'tcp' block"):
        parse_config(text, "c.yml")


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("example.com", "example.com"),
        ("example.com.", "example.com."),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ],
)
def test_accepted_targets(target: str, host: str) -> None:
    assert parse_host(target) == host


BAD_TARGETS = [
    ("", "target parameter: missing"),
    ("http://example.com", "has a URL scheme"),
    ("icmp://127.0.0.1", "has a URL scheme"),
    ("example.com/ping", "has a path"),
    ("127.0.0.1/32", "has a path"),
    ("127.0.0.1:80", "has a port"),
    ("example.com:7", "has a port"),
    ("[::1]:80", "has a port"),
    ("[::1]x", "has text after ']'"),
    ("[::1", "has an unclosed '['"),
    ("[127.0.0.1]", "in brackets is not an IPv6 address"),
    ("[]", "in brackets is not an IPv6 address"),
    ("1:2:3", "is not a valid IPv6 address"),
    ("2001:db8::1::2", "is not a valid IPv6 address"),
    (" 127.0.0.1", "contains whitespace"),
    ("127.0.0.1 ", "contains whitespace"),
    ("example .com", "contains whitespace"),
    ("exa\tmple.com", "contains control characters"),
    ("-example.com", "is not a valid hostname or IP address"),
    ("example..com", "is not a valid hostname or IP address"),
    ("exa mple", "contains whitespace"),
    ("ex!ample.com", "is not a valid hostname or IP address"),
    ("a" * 64 + ".com", "has a name label longer than 63 characters"),
    ("256.1.1.1", "is not a valid IPv4 address or hostname"),
    ("1.2.3", "is not a valid IPv4 address or hostname"),
    ("x" * 260, "longer than 259 characters"),
]


@pytest.mark.parametrize(("target", "message"), BAD_TARGETS)
async def test_bad_targets_get_400_with_a_reason(exporter_client, target, message) -> None:
    client = await exporter_client(CONFIG)
    status, body = await probe(client, module="icmp", target=target)
    assert status == 400
    assert message in body
    assert body.count("\n") == 1  # one line


def test_parse_host_rejects_what_the_handler_rejects() -> None:
    for target, _ in BAD_TARGETS[1:]:  # the empty target is the handler's own check
        with pytest.raises(TargetError):
            parse_host(target)


@pytest.mark.root
async def test_loopback_ipv4(exporter_client) -> None:
    client = await exporter_client(CONFIG)
    status, body = await probe(client, module="icmp", target="127.0.0.1")
    metrics = parse_metrics(body)
    assert status == 200
    assert metrics["probe_success"] == 1, body
    assert metrics["probe_ip_protocol"] == 4
    assert metrics["probe_icmp_packets_sent"] == metrics["probe_icmp_packets_received"] == 3
    assert metrics["probe_icmp_packet_loss_ratio"] == 0
    assert metrics["probe_icmp_duplicate_replies"] == 0
    rtts = [metrics[f'probe_icmp_rtt_seconds{{stat="{s}"}}'] for s in ("min", "avg", "max")]
    assert 0 < rtts[0] <= rtts[1] <= rtts[2] < 0.5
    assert metrics['probe_icmp_duration_seconds{phase="rtt"}'] == rtts[1]
    assert metrics['probe_icmp_rtt_seconds{stat="stddev"}'] >= 0
    assert metrics["probe_icmp_jitter_seconds"] >= 0
    assert metrics["probe_icmp_reply_hop_limit"] == 64
    assert {
        'probe_icmp_duration_seconds{phase="resolve"}',
        'probe_icmp_duration_seconds{phase="setup"}',
    } <= metrics.keys()


@pytest.mark.root
async def test_loopback_ipv6_bracketed(exporter_client) -> None:
    client = await exporter_client(CONFIG)
    _, body = await probe(client, module="icmp6", target="[::1]")
    metrics = parse_metrics(body)
    assert metrics["probe_success"] == 1, body
    assert metrics["probe_ip_protocol"] == 6
    assert metrics["probe_icmp_packets_received"] == 4


@pytest.mark.root
async def test_rtt_keeps_full_precision(exporter_client) -> None:
    client = await exporter_client(CONFIG)
    _, body = await probe(client, module="icmp", target="127.0.0.1")
    line = next(x for x in body.splitlines() if x.startswith('probe_icmp_rtt_seconds{stat="min"}'))
    value = line.split()[1]
    assert float(value) < 0.01
    assert len(value.replace("e-", "").replace(".", "").lstrip("0")) > 3  # ns, not rounded ms


@pytest.mark.root  # the probe needs an ICMP socket before it checks the budget
async def test_timeout_too_short_for_the_packets_fails_before_sending(exporter_client) -> None:
    client = await exporter_client(CONFIG)
    response = await client.get(
        "/probe",
        params={"module": "slow", "target": "127.0.0.1", "debug": "true"},
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "3"},
    )
    body = await response.text()
    assert 'probe_failure_reason{reason="timeout"} 1' in body
    assert "probe_icmp_packets_sent 0" in body
    assert "probe_icmp_packet_loss_ratio" not in body  # no "0 % loss" without packets
    assert "too short to send 10 echo requests 1s apart" in body


async def test_wrong_family_without_fallback_is_a_dns_failure(exporter_client) -> None:
    client = await exporter_client(CONFIG)
    _, body = await probe(client, module="icmp_v6_only", target="127.0.0.1")
    assert 'probe_failure_reason{reason="dns"} 1' in body


@pytest.mark.root
async def test_metrics_shows_the_socket_mode(exporter_client) -> None:
    client = await exporter_client(CONFIG)
    await probe(client, module="icmp", target="127.0.0.1")
    text = await (await client.get("/metrics")).text()
    metrics = parse_metrics(text)
    modes = {k for k in metrics if k.startswith("sonde_icmp_socket_mode{")}
    assert len(modes) == 2  # one line per IP protocol
    assert any('mode="raw"' in k or 'mode="datagram"' in k for k in modes)
    assert 'sonde_icmp_receive_drops_total{ip_protocol="ip4"}' in metrics


@pytest.mark.root
@pytest.mark.prometheus
async def test_promtool_accepts_the_icmp_output(exporter_client) -> None:
    client = await exporter_client(CONFIG)
    outputs = [
        (await probe(client, module="icmp", target="127.0.0.1"))[1],
        (await probe(client, module="icmp6", target="::1"))[1],
        (await probe(client, module="icmp_v6_only", target="127.0.0.1"))[1],  # a failure
        await (await client.get("/metrics")).text(),
    ]
    for text in outputs:
        promtool_check(text)


def reference_checksum(data: bytes) -> int:
    """RFC 1071 the slow way: add the 16-bit words, fold the carries, complement."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=300))
def test_echo_checksum_matches_rfc1071(ident: int, seq: int, payload: bytes) -> None:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    got = echo_checksum(8 * 256 + ident + seq, ones_sum(payload))
    assert got == reference_checksum(header + payload)


def test_ones_sum_edge_cases() -> None:
    assert ones_sum(b"") == 0
    assert ones_sum(b"\0\0\0\0") == 0
    assert ones_sum(b"\xff\xff") == 0xFFFF  # one's complement "negative zero" stays itself
    assert ones_sum(b"\xff\xff\xff\xff") == 0xFFFF
    data = random.Random(1).randbytes(65507)
    assert echo_checksum(0, ones_sum(data)) == reference_checksum(data)


def test_a_wall_clock_step_falls_back_to_the_monotonic_rtt() -> None:
    # Stepping the host's clock in a test is not an option, so the exchange is fed the
    # timestamps a step would produce. The kernel stamp and the send stamp are wall clock;
    # the monotonic pair around them bounds the RTT from above.
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        exchange = EchoExchange(Endpoint(socket.AF_INET6, SocketMode.RAW, sock), "::1", 3, 56)
        exchange.sent = 3
        for index in range(3):
            exchange.sent_real[index] = 1_000_000_000_000
            exchange.sent_mono[index] = 5_000_000
        exchange.reply(0, 1_000_000_400_000, 5_000_000 + 900_000, 64)  # 0.4 ms, in bounds
        exchange.reply(1, 1_005_000_000_000, 5_000_000 + 900_000, 64)  # clock jumped +5 s
        exchange.reply(2, 999_000_000_000, 5_000_000 + 700_000, 64)  # clock jumped back
        exchange.reply(2, 1_000_000_100_000, 5_000_000 + 800_000, 64)  # a duplicate
    assert exchange.rtt_ns == [400_000, 900_000, 700_000]
    assert exchange.clock_fallbacks == 2
    assert exchange.duplicates == 1
    assert exchange.received == 3


@given(st.text(max_size=80) | st.from_regex(r"\[?[0-9a-fA-F:.]{0,40}\]?(:[0-9]{1,5})?"))
def test_parse_host_returns_a_bare_host_or_a_target_error(target: str) -> None:
    # Parsing only: fuzzed targets are never probed (the tests may send only to loopback).
    try:
        host = parse_host(target)
    except TargetError as error:
        assert "\n" not in str(error)
        return
    assert host and not any(c.isspace() for c in host)
    assert "/" not in host and "[" not in host and "]" not in host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        assert ":" not in host  # a name, never a host:port
