"""The IP filter on /probe, against real listeners on loopback: a denied target gets 403 and its
listener sees no connection, whatever the spelling, the unspecified address (which Linux
connects to loopback) included, through /probe and /probe?monitor=; ports; one lookup for the
check and the connection (DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from helpers import parse_metrics, probe
from ipfilter_listeners import (
    NEEDS_RESOLVER,
    UNSPECIFIED,
    UNSPECIFIED_V4,
    Listener,
    accepted,
    loopback_pair,
    numeric_resolver,
    start,
)
from tcpservers import loopback_v6_available

CONFIG = """
ip_filter:
  default: deny
  allowed: [127.0.0.0/8, "::1"]
  denied: [127.0.0.2]
modules:
  tcp:
    prober: tcp
    timeout: 3s
  no_v6_loopback:
    prober: tcp
    timeout: 3s
    ip_filter: {denied: ["::1"]}
  ports:
    prober: tcp
    timeout: 3s
    allowed_ports: [PORT]
  traced:
    prober: tcp
    timeout: 3s
    retries: {max: 1, on: [any]}
    traceroute_on_error: true
  inverted:
    prober: tcp
    timeout: 3s
    should_fail: true
  tcp_public:  # the README's example: a deny-list with loopback in it
    prober: tcp
    timeout: 3s
    ip_filter:
      denied: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, "::1", "fc00::/7"]
  tcp_open:
    prober: tcp
    timeout: 3s
    ip_filter: {default: allow}
"""


def forbidden(status: int, body: str, reason: str) -> None:
    assert status == 403, body
    assert body.startswith("target parameter: ") and body.count("\n") == 1, body
    assert reason in body, body


async def test_denied_address_gets_403_and_sees_no_connection(
    exporter_client, tcp_server, monkeypatch
):
    allowed, allowed_port = await start(tcp_server, "127.0.0.1")
    denied, port = await start(tcp_server, "127.0.0.2")
    client = await exporter_client(CONFIG.replace("PORT", "1"))
    status, body = await probe(client, module="tcp", target=f"127.0.0.1:{allowed_port}")
    assert status == 200 and parse_metrics(body)["probe_success"] == 1
    # The same destination, spelled as IPv4-mapped IPv6, reaches the IPv4 listener when allowed:
    # so each spelling below is a real way to reach 127.0.0.2.
    status, body = await probe(client, module="tcp", target=f"[::ffff:127.0.0.1]:{allowed_port}")
    assert status == 200 and parse_metrics(body)["probe_success"] == 1
    assert await accepted(allowed, 2) == 2

    numeric_resolver(monkeypatch)
    spellings = [
        "127.0.0.2",
        "[::ffff:127.0.0.2]",
        "[::ffff:7f00:2]",
        "[0:0:0:0:0:ffff:7f00:2]",
        "0x7f000002",  # parsed as a host name; resolves (inet_aton) to 127.0.0.2
        "127.0.0.0x2",
        "0x7f.0x0.0x0.0x2",
    ]
    for host in spellings:
        for debug in ("false", "true"):
            status, body = await probe(client, module="tcp", target=f"{host}:{port}", debug=debug)
            forbidden(status, body, "is denied: ip_filter denied: 127.0.0.2/32")
    # A refusal is not a failed probe that should_fail could turn into a success.
    status, body = await probe(client, module="inverted", target=f"127.0.0.2:{port}")
    forbidden(status, body, "is denied: ip_filter denied: 127.0.0.2/32")
    # Numeric forms the target parser refuses outright (its last label is all digits).
    for host in ("2130706434", "127.2", "0177.0.0.2", "127.0.0.2.", "0x7f.2"):
        status, body = await probe(client, module="tcp", target=f"{host}:{port}")
        assert status == 400, (host, body)
    await asyncio.sleep(0.05)  # a connection that slipped through would be accepted by now
    assert denied.connections == 0
    # A forbidden probe is no probe: not counted, not in the history.
    assert (
        'sonde_probes_total{module="tcp",result="failure"}'
        not in await (await client.get("/metrics")).text()
    )


async def test_ipv6_spellings_and_zone_ids(exporter_client, tcp_server):
    loopback_v6_available()
    listener, port = await start(tcp_server, "::1")
    client = await exporter_client(CONFIG.replace("PORT", "1"))
    status, body = await probe(client, module="tcp", target=f"[::1]:{port}")
    assert status == 200 and parse_metrics(body)["probe_success"] == 1
    for host in ("[::1]", "[::1%lo]", "[0:0:0:0:0:0:0:1]", "[0::1%1]"):
        status, body = await probe(client, module="no_v6_loopback", target=f"{host}:{port}")
        forbidden(status, body, "is denied: ip_filter denied: ::1/128")
    await asyncio.sleep(0.05)
    assert await accepted(listener, 1) == 1


async def test_allowed_ports(exporter_client, tcp_server, closed_port):
    listener, port = await start(tcp_server, "127.0.0.1")
    client = await exporter_client(CONFIG.replace("PORT", str(port)))
    status, body = await probe(client, module="ports", target=f"127.0.0.1:{port}")
    assert status == 200 and parse_metrics(body)["probe_success"] == 1
    status, body = await probe(client, module="ports", target=f"127.0.0.1:{closed_port}")
    forbidden(status, body, f"port {closed_port} is not in the module's allowed_ports ({port})")
    # A denied port is refused before any lookup: the guard would turn a lookup into a failure.
    status, body = await probe(client, module="ports", target=f"name.invalid:{closed_port}")
    forbidden(status, body, "allowed_ports")
    assert await accepted(listener, 1) == 1


class RebindingResolver:
    """getaddrinfo for one name whose answer changes on every lookup (a DNS rebinding attack),
    at the exporter's one resolution seam; every other name goes to the real (guarded) one."""

    NAME = "rebind.test"

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.lookups = 0
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != self.NAME:
            return self.real(host, port, *args, **kwargs)
        ip = self.answers[self.lookups % len(self.answers)]
        self.lookups += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0))]


async def test_dns_rebinding_check_and_connect_use_one_lookup(
    exporter_client, tcp_server, closed_port, monkeypatch
):
    good, port = await start(tcp_server, "127.0.0.1")
    bad = Listener()
    servers = [
        await asyncio.start_server(bad, "127.0.0.2", port),  # the same port, a denied address
        await asyncio.start_server(bad, "127.0.0.2", closed_port),  # .1 refuses this port
    ]
    try:
        client = await exporter_client(CONFIG.replace("PORT", "1"))
        resolver = RebindingResolver(["127.0.0.1", "127.0.0.2"])
        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        # First answer allowed, the next one denied: the probe connects where it checked.
        target = f"{RebindingResolver.NAME}:{port}"
        status, body = await probe(client, module="tcp", target=target)
        assert status == 200 and parse_metrics(body)["probe_success"] == 1
        assert resolver.lookups == 1
        # The next probe gets the denied answer: refused, though the name passed a moment ago.
        status, body = await probe(client, module="tcp", target=target)
        forbidden(status, body, "target address 127.0.0.2 is denied")
        assert resolver.lookups == 2
        # Each attempt looks the name up and is checked again: the first (allowed, refused)
        # fails, the retry's answer is denied; no traceroute follows a refused attempt.
        resolver.lookups = 0
        target = f"{RebindingResolver.NAME}:{closed_port}"
        status, body = await probe(client, module="traced", target=target)
        forbidden(status, body, "target address 127.0.0.2 is denied")
        assert resolver.lookups == 2
        await asyncio.sleep(0.05)  # a connection that slipped through would be accepted by now
        assert await accepted(good, 1) == 1
        assert bad.connections == 0
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


def loopback_reading(host: str) -> str:
    return "127.0.0.1" if host in UNSPECIFIED_V4 else "::1"


async def test_the_unspecified_address_is_matched_as_loopback(exporter_client, monkeypatch):
    """0.0.0.0 and :: connect to loopback (Linux): a deny of 127.0.0.0/8 and ::1 refuses every
    spelling of them, through /probe and /probe?monitor=, and neither listener sees one."""
    v4, v6 = Listener(), Listener()
    async with loopback_pair(v4, v6) as port:
        monitors = "".join(
            f"  - {{name: m{i}, module: tcp_public, target: '{host}:{port}', interval: 1h}}\n"
            for i, host in enumerate(UNSPECIFIED)
        )
        client = await exporter_client(CONFIG.replace("PORT", "1") + "monitors:\n" + monitors)
        numeric_resolver(monkeypatch)
        # Each spelling is a real way to reach a listener: allowed, it connects.
        for host in UNSPECIFIED:
            status, body = await probe(client, module="tcp_open", target=f"{host}:{port}")
            assert status == 200 and parse_metrics(body)["probe_success"] == 1, (host, body)
        assert await accepted(v4, len(UNSPECIFIED_V4)) == len(UNSPECIFIED_V4)
        assert await accepted(v6, len(UNSPECIFIED) - len(UNSPECIFIED_V4)) == 4
        v4.connections = v6.connections = 0
        plans = {plan.record.name: plan for plan in client.exporter.monitors.plans.values()}
        for i, host in enumerate(UNSPECIFIED):
            literal = "0.0.0.0" if host in NEEDS_RESOLVER else host.strip("[]")
            address = ipaddress.ip_address(literal)  # the message names it canonically
            reason = f"(read as {loopback_reading(host)}) is denied: ip_filter denied: "
            status, body = await probe(client, module="tcp_public", target=f"{host}:{port}")
            forbidden(status, body, f"target address {address} {reason}")
            status, body = await probe(client, monitor=plans[f"m{i}"].id)
            forbidden(status, body, reason)
        await asyncio.sleep(0.05)  # a connection that slipped through would be accepted by now
        assert (v4.connections, v6.connections) == (0, 0)
