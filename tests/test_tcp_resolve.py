"""Address choice: IPv6 on loopback, preferred_ip_protocol / ip_protocol_fallback, DNS failures.

Host names are resolved inside a network and mount namespace the test creates, with its own
/etc/hosts and an /etc/resolv.conf that points at nothing (127.0.0.1 in the namespace), so
the answers are fixed and no query ever leaves the machine. Needs root (CI runs as root).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from helpers import assert_failed, assert_succeeded, parse_metrics, probe
from tcpservers import hold_open, loopback_v6_available

from sonde_exporter.config import TcpModule
from sonde_exporter.resolve import fnv32a

HASH_127_0_0_1 = 3668918509
HASH_V6_LOOPBACK = 1751717746
"""probe_ip_addr_hash (FNV-32a of the address bytes) as blackbox_exporter 0.23 reports it."""

CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: 2s
  prefer_ip4:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
  prefer_ip6:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip6
  only_ip4:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
  only_ip6:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
"""


async def test_ipv6_loopback_literal(exporter_client, tcp_server):
    loopback_v6_available()
    port = await tcp_server(hold_open, host="::1")
    client = await exporter_client(CONFIG)
    _, body = await probe(client, module="tcp", target=f"[::1]:{port}")
    metrics = assert_succeeded(body)
    assert metrics["probe_ip_protocol"] == 6
    assert metrics["probe_ip_addr_hash"] == HASH_V6_LOOPBACK
    assert 0 < metrics["probe_tcp_rtt_seconds"] < 0.05


async def test_literals_and_fallback(exporter_client, tcp_server):
    loopback_v6_available()
    v4 = await tcp_server(hold_open, host="127.0.0.1")
    v6 = await tcp_server(hold_open, host="::1")
    client = await exporter_client(CONFIG)
    _, body = await probe(client, module="prefer_ip6", target=f"127.0.0.1:{v4}")
    assert assert_succeeded(body)["probe_ip_protocol"] == 4  # fallback
    _, body = await probe(client, module="only_ip6", target=f"127.0.0.1:{v4}")
    assert_failed(body, "dns")
    _, body = await probe(client, module="only_ip4", target=f"[::1]:{v6}")
    metrics = assert_failed(body, "dns")
    assert metrics["probe_ip_protocol"] == 0
    assert metrics["probe_ip_addr_hash"] == 0
    _, body = await probe(client, module="only_ip4", target=f"127.0.0.1:{v4}")
    metrics = assert_succeeded(body)
    assert metrics["probe_ip_addr_hash"] == HASH_127_0_0_1


async def test_localhost_with_ip4_preferred(exporter_client, tcp_server):
    port = await tcp_server(hold_open, host="127.0.0.1")
    client = await exporter_client(CONFIG)
    _, body = await probe(client, module="prefer_ip4", target=f"localhost:{port}")
    metrics = assert_succeeded(body)
    assert metrics["probe_ip_protocol"] == 4
    assert metrics["probe_ip_addr_hash"] == HASH_127_0_0_1


V6_ONLY = "fd00::1"
"""Added to lo in the namespace: glibc answers an IPv4 query for a name on ::1 with 127.0.0.1."""
HOSTS = f"""\
127.0.0.1 localhost dual.sonde.test v4.sonde.test
::1 localhost dual.sonde.test
{V6_ONLY} v6.sonde.test
"""
RESOLV = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
PORT = 9000
"""Free for sure: the namespace is new."""

PROBES = """
import asyncio, json, sys
from pathlib import Path
from aiohttp.test_utils import TestClient, TestServer
from sonde_exporter.app import build_app
from sonde_exporter.exporter import Exporter

async def main():
    config, port, requests = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    async def hold(reader, writer):
        await reader.read()
        writer.close()
    servers = [await asyncio.start_server(hold, host, port) for host in ("127.0.0.1", "::1", "fd00::1")]
    client = TestClient(TestServer(build_app(Exporter.from_file(config))))
    await client.start_server()
    bodies = []
    for module, target in requests:
        response = await client.get("/probe", params={"module": module, "target": target})
        bodies.append(await response.text())
    await client.close()
    for server in servers:
        server.close()
    print(json.dumps(bodies))

asyncio.run(main())
"""


def probe_in_namespace(tmp_path, requests: list[tuple[str, str]]) -> list[dict[str, float]]:
    """Run the exporter in a fresh net+mount namespace with our hosts and resolv.conf."""
    for tool in ("unshare", "ip", "mount"):
        assert shutil.which(tool), f"{tool} is needed (util-linux, iproute2)"
    (tmp_path / "hosts").write_text(HOSTS)
    (tmp_path / "resolv.conf").write_text(RESOLV)
    (tmp_path / "config.yml").write_text(CONFIG)
    (tmp_path / "probes.py").write_text(textwrap.dedent(PROBES))
    setup = (
        f"ip link set lo up && ip addr add {V6_ONLY}/128 dev lo nodad && "
        'mount --bind "$1" /etc/hosts && '
        'mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
    )
    files = [tmp_path / name for name in ("hosts", "resolv.conf", "probes.py", "config.yml")]
    hosts, resolv, script, config = map(str, files)
    run = [sys.executable, script, config, str(PORT), json.dumps(requests)]
    result = subprocess.run(
        ["unshare", "--net", "--mount", "--", "sh", "-c", setup, "sh", hosts, resolv, *run],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"namespace run failed (needs root): {result.stderr}"
    return [parse_metrics(body) for body in json.loads(result.stdout)]


@pytest.mark.root
def test_names_with_preferred_protocol_and_fallback(tmp_path):
    requests = [
        ("prefer_ip4", "dual.sonde.test"),
        ("prefer_ip6", "dual.sonde.test"),
        ("prefer_ip6", "localhost"),
        ("prefer_ip4", "v6.sonde.test"),  # falls back to IPv6
        ("prefer_ip6", "v4.sonde.test"),  # falls back to IPv4
        ("only_ip6", "dual.sonde.test"),
        ("only_ip6", "v4.sonde.test"),  # no IPv6 address, no fallback
        ("only_ip4", "v6.sonde.test"),
        ("tcp", "missing.sonde.test"),  # nobody answers DNS in the namespace
    ]
    results = probe_in_namespace(tmp_path, [(m, f"{host}:{PORT}") for m, host in requests])
    chosen = [
        (r["probe_success"], r["probe_ip_protocol"], r["probe_ip_addr_hash"]) for r in results
    ]
    ip4, ip6, none = (1, 4, HASH_127_0_0_1), (1, 6, HASH_V6_LOOPBACK), (0, 0, 0)
    v6_only = (1, 6, fnv32a(ipaddress.ip_address(V6_ONLY).packed))
    assert chosen == [ip4, ip6, ip6, v6_only, ip4, ip6, none, none, none]
    for result in results[-3:]:
        assert result['probe_failure_reason{reason="dns"}'] == 1
        assert "probe_dns_lookup_time_seconds" in result
        assert 'probe_tcp_duration_seconds{phase="connect"}' not in result


def test_default_is_ip4_with_fallback():
    """The default preferred_ip_protocol is ip4 (blackbox's is ip6): see the README."""
    assert TcpModule().preferred_ip_protocol == "ip4"
    assert TcpModule().ip_protocol_fallback is True
