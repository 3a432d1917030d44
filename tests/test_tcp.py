"""The TCP prober against real loopback servers: connect, timeouts, sockets, common metrics."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest
from helpers import assert_failed, assert_succeeded, parse_metrics, probe
from tcpservers import (
    backlogged_listener,
    full_listener,
    hold_open,
    open_fds,
    settled_fds,
    sockets_to,
)

CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: 2s
  tcp_1s:
    prober: tcp
    timeout: 1s
  banner_1s:
    prober: tcp
    timeout: 1s
    tcp:
      query_response:
        - expect: "^220 "
  starttls_1s:
    prober: tcp
    timeout: 1s
    tcp:
      tls_config:
        ca_file: {ca_file}
      query_response:
        - expect: "^220 "
        - starttls: true
  tls_1s:
    prober: tcp
    timeout: 1s
    tcp:
      tls: true
      tls_config:
        ca_file: {ca_file}
"""

BUDGET_SLACK = 0.1
"""The acceptance bound: a probe answers within its timeout plus 100 ms."""


@pytest.fixture
async def client(exporter_client, pki):
    return await exporter_client(CONFIG.format(ca_file=pki.ca_file))


async def timed_probe(client, **params: str) -> tuple[float, str]:
    start = time.perf_counter()
    status, body = await probe(client, **params)
    assert status == 200
    return time.perf_counter() - start, body


async def test_connect_to_open_port(client, tcp_server):
    port = await tcp_server(hold_open)
    status, body = await probe(client, module="tcp", target=f"127.0.0.1:{port}")
    assert status == 200
    metrics = assert_succeeded(body)
    assert metrics["probe_ip_protocol"] == 4
    assert metrics["probe_timeout_seconds"] == 2
    assert 0 < metrics["probe_duration_seconds"] < 2
    assert metrics['probe_tcp_duration_seconds{phase="resolve"}'] >= 0
    assert metrics['probe_tcp_duration_seconds{phase="connect"}'] > 0
    assert 'phase="tls"' not in body and 'phase="query"' not in body
    assert metrics["probe_failed_due_to_regex"] == 0


async def test_rtt_comes_from_the_kernel(client, tcp_server):
    port = await tcp_server(hold_open)
    _, body = await probe(client, module="tcp", target=f"127.0.0.1:{port}")
    rtt = parse_metrics(body)["probe_tcp_rtt_seconds"]
    assert 0 < rtt < 0.05  # loopback: microseconds, never zero


async def test_connect_to_closed_port_is_refused(client):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status, body = await probe(client, module="tcp", target=f"127.0.0.1:{port}")
    assert status == 200
    metrics = assert_failed(body, "connect_refused")
    assert "probe_tcp_rtt_seconds" not in metrics


async def test_full_backlog_is_a_connect_timeout_within_budget(client):
    with backlogged_listener() as port:
        elapsed, body = await timed_probe(client, module="tcp_1s", target=f"127.0.0.1:{port}")
    metrics = assert_failed(body, "connect_timeout")
    assert elapsed < 1 + BUDGET_SLACK
    assert metrics["probe_timeout_seconds"] == 1
    assert 'probe_tcp_duration_seconds{phase="connect"}' in metrics


async def test_connect_that_completes_after_a_syn_retransmit_succeeds(client):
    """The slow connect path: the handshake is still under way when connect() returns."""
    accepted: list[socket.socket] = []
    with full_listener() as listener:
        port = listener.getsockname()[1]
        fillers = sockets_to(port)
        probing = asyncio.ensure_future(probe(client, module="tcp", target=f"127.0.0.1:{port}"))
        while not sockets_to(port) - fillers:  # the prober's SYN is out, and was dropped
            assert not probing.done()
            await asyncio.sleep(0.01)
        # Now make room: the kernel retransmits the SYN after 1 s, and it gets in.
        listener.setblocking(False)
        try:
            while not probing.done():
                with contextlib.suppress(BlockingIOError):
                    accepted.append(listener.accept()[0])
                await asyncio.sleep(0.01)
        finally:
            for sock in accepted:
                sock.close()
        status, body = await probing
    assert status == 200
    metrics = assert_succeeded(body)
    assert metrics["probe_tcp_rtt_seconds"] > 0


async def test_silent_server_times_out_the_expect_within_budget(client, tcp_server):
    port = await tcp_server(hold_open)
    elapsed, body = await timed_probe(client, module="banner_1s", target=f"127.0.0.1:{port}")
    metrics = assert_failed(body, "timeout")
    assert elapsed < 1 + BUDGET_SLACK
    assert 'probe_tcp_duration_seconds{phase="query"}' in metrics
    assert metrics["probe_failed_due_to_regex"] == 0  # nothing was read, nothing mismatched


async def test_handshake_that_never_completes_fails_within_budget(client, tcp_server):
    port = await tcp_server(hold_open)  # plain TCP: it never answers the ClientHello
    elapsed, body = await timed_probe(client, module="tls_1s", target=f"localhost:{port}")
    metrics = assert_failed(body, "tls_handshake")
    assert elapsed < 1 + BUDGET_SLACK
    assert 'probe_tcp_duration_seconds{phase="tls"}' in metrics
    assert "probe_ssl_earliest_cert_expiry" not in metrics


@pytest.mark.filterwarnings("error::ResourceWarning")  # a socket left to the GC is a leak too
async def test_starttls_that_never_completes_fails_within_budget(client, tcp_server):
    async def banner_then_silence(reader, writer) -> None:
        writer.write(b"220 ready\r\n")
        await hold_open(reader, writer)

    port = await tcp_server(banner_then_silence)
    elapsed, body = await timed_probe(client, module="starttls_1s", target=f"localhost:{port}")
    metrics = assert_failed(body, "tls_handshake")
    assert elapsed < 1 + BUDGET_SLACK
    assert 'probe_tcp_duration_seconds{phase="tls"}' in metrics


async def test_failures_and_timeouts_leave_no_socket_open(client, tcp_server, pki):
    silent = await tcp_server(hold_open)
    tls = await tcp_server(hold_open, ssl=pki.server_context())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    await client.get("/-/healthy")  # opens the client's keep-alive connection
    with backlogged_listener() as backlogged:
        ports = (closed, backlogged, silent, tls)
        before = set().union(*map(sockets_to, ports))  # the backlogged listener's fillers
        baseline = open_fds()
        for module, port in [
            ("tcp", closed),
            ("tcp_1s", backlogged),
            ("banner_1s", silent),
            ("tls_1s", silent),
            ("tls_1s", tls),
            ("tcp", silent),
            ("banner_1s", tls),
            ("starttls_1s", silent),
        ]:
            await probe(client, module=module, target=f"localhost:{port}")
        assert set().union(*map(sockets_to, ports)) - before == set()
        assert await settled_fds(baseline) == baseline


async def test_ipv6_scope_that_names_no_interface_is_a_connect_error(client):
    # Fails inside connect(), before any packet is sent; loopback all the same, so that
    # nothing could leave this machine even if the scope were ignored.
    target = "[::1%nosuchif0]:22"
    _, body = await probe(client, module="tcp", target=target)
    assert_failed(body, "connect_error")
    _, debug = await probe(client, module="tcp", target=target, debug="true")
    assert "cannot connect to ::1%nosuchif0 port 22" in debug


async def test_error_text_stays_out_of_labels(client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, body = await probe(client, module="tcp", target=f"127.0.0.1:{port}")
    assert "refused" not in body.replace('reason="connect_refused"', "")
    _, debug = await probe(client, module="tcp", target=f"127.0.0.1:{port}", debug="true")
    assert f"connection to 127.0.0.1 port {port} refused" in debug


async def test_source_ip_address_is_the_peer_the_server_sees(exporter_client, tcp_server):
    peers: asyncio.Queue[str] = asyncio.Queue()

    async def record_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.put_nowait(writer.get_extra_info("peername")[0])
        writer.close()

    port = await tcp_server(record_peer)
    client = await exporter_client(
        """
        modules:
          from_127_0_0_2:
            prober: tcp
            tcp:
              source_ip_address: 127.0.0.2
        """
    )
    _, body = await probe(client, module="from_127_0_0_2", target=f"127.0.0.1:{port}")
    assert_succeeded(body)
    # The probe may answer before this server (on the same loop) has accepted the connection.
    assert await asyncio.wait_for(peers.get(), 5) == "127.0.0.2"


async def test_unusable_source_ip_address_fails_the_probe(exporter_client, tcp_server):
    port = await tcp_server(hold_open)
    client = await exporter_client(
        """
        modules:
          from_elsewhere:
            prober: tcp
            tcp:
              source_ip_address: 192.0.2.1
        """
    )
    _, body = await probe(client, module="from_elsewhere", target=f"127.0.0.1:{port}")
    assert_failed(body, "connect_error")
