"""The IP filter on /probe, against real listeners on loopback: a denied target gets 403 and its
listener sees no connection, whatever the spelling; ports; one lookup for the check and the
connection (DNS rebinding); an email module's credentials."""

from __future__ import annotations

import _socket
import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import parse_metrics, probe
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
"""


class Listener:
    """Counts the connections it accepts, then hangs up."""

    def __init__(self) -> None:
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def accepted(listener: Listener, expected: int) -> int:
    """The listener's count once its handler ran for `expected` connections (or after 2s):
    the probe may answer before the server's handler task gets its turn."""
    for _ in range(200):
        if listener.connections >= expected:
            break
        await asyncio.sleep(0.01)
    return listener.connections


StartServer = Callable[..., Awaitable[int]]


async def start(tcp_server: StartServer, host: str) -> tuple[Listener, int]:
    listener = Listener()
    return listener, await tcp_server(listener, host)


def forbidden(status: int, body: str, reason: str) -> None:
    assert status == 403, body
    assert body.startswith("target parameter: ") and body.count("\n") == 1, body
    assert reason in body, body


def numeric_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo as the exporter calls it, but numeric hosts only (AI_NUMERICHOST), so no name
    can reach a DNS server. It calls the C function: the loopback guard refuses 0x7f000002 as
    a name before glibc could read it (inet_aton) as 127.0.0.2; connections stay guarded."""

    def numeric_only(host: Any, port: Any, family: int = 0, type: int = 0, *rest: int) -> Any:
        proto, flags = (*rest, 0, 0)[:2]
        return [
            (socket.AddressFamily(f), socket.SocketKind(t), p, name, address)
            for f, t, p, name, address in _socket.getaddrinfo(
                host, port, family, type, proto, flags | socket.AI_NUMERICHOST
            )
        ]

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


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
