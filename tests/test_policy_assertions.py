"""Assertions against real servers: every source and comparison, on TCP (loopback), ICMP
(127.0.0.1) and email (the real mail stack). Each output also passes promtool."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from email_modules import email_module
from helpers import checked_probe, debug_text, failure_reason_series
from mailstack import MailStack
from tcpservers import answer_ok, hold_open

from sonde_exporter.prober_base import RESPONSE_DATA_LIMIT

# (source, comparison, target or None, held against the banner "HELLO world\r\n")
DATA_CASES = [
    ("equals", "HELLO world\\r\\n", 1),
    ("equals", "HELLO", 0),
    ("not_equals", "HELLO", 1),
    ("not_equals", "HELLO world\\r\\n", 0),
    ("contains", "world", 1),
    ("contains", "nope", 0),
    ("not_contains", "nope", 1),
    ("not_contains", "world", 0),
    ("not_empty", None, 1),
    ("is_empty", None, 0),
    ("matches", "^HELLO w", 1),
    ("matches", "^world", 0),
]
# Loopback answers in about 1ms; 4s holds on a loaded 2-core box and stays below the timeout.
TIME_CASES = [("less_than", "4s", 1), ("greater_than", "4s", 0)]

# Every answer goes through promtool (tests/helpers.py checked_probe).
pytestmark = pytest.mark.prometheus


def assertion_yaml(source: str, comparison: str, target: str | None) -> str:
    quoted = "" if target is None else f', target: "{target}"'
    return f"      - {{source: {source}, comparison: {comparison}{quoted}}}\n"


def gauge(index: int, source: str, comparison: str) -> str:
    return (
        f'probe_assertion_success{{assertion="{index}",comparison="{comparison}",'
        f'source="{source}"}}'
    )


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HELLO world\r\n")
    await writer.drain()
    await hold_open(reader, writer)


async def test_tcp_assertions_every_comparison(exporter_client, tcp_server):
    cases = [("response_data", *case) for case in DATA_CASES]
    cases += [("response_time", *case) for case in TIME_CASES]
    config = (
        "modules:\n  banner:\n    prober: tcp\n    timeout: 5s\n    tcp:\n"
        '      query_response:\n        - expect: "^HELLO"\n    assertions:\n'
    )
    config += "".join(assertion_yaml(s, c, t) for s, c, t, _ in cases)
    config += (
        "  connect_only:\n    prober: tcp\n    timeout: 5s\n    assertions:\n"
        + assertion_yaml("response_data", "is_empty", None)
        + assertion_yaml("response_data", "not_empty", None)
    )
    client = await exporter_client(config)
    target = f"127.0.0.1:{await tcp_server(banner)}"
    metrics, _ = await checked_probe(client, module="banner", target=target)
    assert {i: metrics[gauge(i, s, c)] for i, (s, c, _, _) in enumerate(cases)} == {
        i: held for i, (_, _, _, held) in enumerate(cases)
    }
    assert metrics["probe_success"] == 0
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="assertion_failed"}': 1}
    debug = await debug_text(client, module="banner", target=target)
    assert (
        "assertion 1: response_data equals 'HELLO'; observed 13 bytes b'HELLO world\\\\r\\\\n'"
        in (debug)
    )
    # Nothing is read without an expect step: response_data is empty.
    metrics, _ = await checked_probe(client, module="connect_only", target=target)
    assert metrics[gauge(0, "response_data", "is_empty")] == 1
    assert metrics[gauge(1, "response_data", "not_empty")] == 0


async def test_tcp_assertions_all_holding_pass(exporter_client, tcp_server):
    config = (
        "modules:\n  ok:\n    prober: tcp\n    timeout: 5s\n    tcp:\n"
        '      query_response:\n        - expect: "^OK"\n    assertions:\n'
        + assertion_yaml("response_data", "contains", "OK")
        + assertion_yaml("response_time", "less_than", "4s")
    )
    client = await exporter_client(config)
    metrics, _ = await checked_probe(
        client, module="ok", target=f"127.0.0.1:{await tcp_server(answer_ok)}"
    )
    assert metrics["probe_success"] == 1
    assert metrics[gauge(0, "response_data", "contains")] == 1
    assert metrics[gauge(1, "response_time", "less_than")] == 1


async def test_response_data_is_capped(exporter_client, tcp_server):
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((b"x" * 99 + b"\n") * 1000 + b"END\n")
        await writer.drain()
        await hold_open(reader, writer)

    config = (
        "modules:\n  flood:\n    prober: tcp\n    timeout: 5s\n    tcp:\n"
        '      query_response:\n        - expect: "^END"\n    assertions:\n'
        + assertion_yaml("response_data", "contains", "END")
        + assertion_yaml("response_data", "matches", "^x{99}\\\\n")
    )
    client = await exporter_client(config)
    target = f"127.0.0.1:{await tcp_server(flood)}"
    metrics, _ = await checked_probe(client, module="flood", target=target)
    assert metrics[gauge(0, "response_data", "contains")] == 0  # END came after the cap
    assert metrics[gauge(1, "response_data", "matches")] == 1
    debug = await debug_text(client, module="flood", target=target)
    assert f"observed {RESPONSE_DATA_LIMIT} bytes" in debug


# Loopback RTTs are microseconds, measured by kernel timestamps that event-loop delay does
# not inflate; 1s is far from both sides. Loss on loopback is 0.
ICMP_CASES = [
    ("packet_loss", "equals", "0", 1),
    ("packet_loss", "not_equals", "0", 0),
    ("packet_loss", "less_than", "0.5", 1),
    ("packet_loss", "greater_than", "0.5", 0),
    *(
        (source, comparison, "1s", held)
        for source in ("rtt_avg", "rtt_max", "jitter", "response_time")
        for comparison, held in (("less_than", 1), ("greater_than", 0))
    ),
]


@pytest.mark.root
async def test_icmp_assertions(exporter_client):
    lines = "".join(
        f"      - {{source: {s}, comparison: {c}, target: {t}}}\n" for s, c, t, _ in ICMP_CASES
    )
    config = (
        "modules:\n  ping:\n    prober: icmp\n    timeout: 3s\n    icmp:\n"
        f"      interval: 10ms\n    assertions:\n{lines}"
    )
    client = await exporter_client(config)
    metrics, _ = await checked_probe(client, module="ping", target="127.0.0.1")
    assert metrics["probe_icmp_packets_received"] == 3
    assert {i: metrics[gauge(i, s, c)] for i, (s, c, _, _) in enumerate(ICMP_CASES)} == {
        i: held for i, (_, _, _, held) in enumerate(ICMP_CASES)
    }
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="assertion_failed"}': 1}


@pytest.mark.root
@pytest.mark.mailstack
async def test_email_delivery_time_assertions(
    exporter_client, mail_stack: MailStack, tmp_path: Path
):
    """A delivery through Postfix and a mailbox poll takes far more than a microsecond."""
    password_file = tmp_path / "smtp-password"
    password_file.write_text(mail_stack.passwords["tester"] + "\n")
    module = email_module(mail_stack, password_file)
    module["assertions"] = [
        {"source": "delivery_time", "comparison": "greater_than", "target": "1us"},
        {"source": "delivery_time", "comparison": "less_than", "target": "1us"},
        {"source": "response_time", "comparison": "greater_than", "target": "1us"},
    ]
    client = await exporter_client(yaml.safe_dump({"modules": {"mail": module}}))
    metrics, _ = await checked_probe(client, module="mail", target="")
    assert metrics["probe_email_send_success"] == 1
    assert metrics[gauge(0, "delivery_time", "greater_than")] == 1
    assert metrics[gauge(1, "delivery_time", "less_than")] == 0
    assert metrics[gauge(2, "response_time", "greater_than")] == 1
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="assertion_failed"}': 1}
