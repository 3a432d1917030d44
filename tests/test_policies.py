"""Probe policies against real loopback servers: retries, degraded and too slow, should_fail
(assertions: test_policy_assertions.py). Each output also passes `promtool check metrics`."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
from collections.abc import Iterator

import pytest
from helpers import (
    attempt_failures,
    checked_probe,
    debug_text,
    failure_reason_series,
    parse_metrics,
    promtool_check,
)
from tcpservers import answer_ok, hold_open

from sonde_exporter.handler import TIMEOUT_HEADER

NEW_FAMILIES = (
    "probe_attempts",
    "probe_attempt_failure_reason",
    "probe_degraded",
    "probe_raw_success",
    "probe_raw_failure_reason",
    "probe_assertion_success",
)

# Every answer goes through promtool (tests/helpers.py checked_probe).
pytestmark = pytest.mark.prometheus


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0): the client's read fails with ECONNRESET."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Connections:
    """A server whose first connection gets `first`, and every later one `answer_ok`."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.count = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count += 1
        if self.count > 1:
            await answer_ok(reader, writer)
        elif self.first == "reset":
            reset(writer)
        elif self.first == "silent":
            await hold_open(reader, writer)
        else:  # a wrong answer
            writer.write(b"BAD\r\n")
            await writer.drain()
            await hold_open(reader, writer)


class ListenAfterFirstFailure(logging.Handler):
    """Starts listening on a bound socket when the probe logs its first failed attempt.

    The log line is emitted synchronously before the backoff starts, so the first attempt
    is always refused and the second always finds the port open: no timing involved.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(logging.WARNING)
        self.sock = sock
        self.listening = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "Attempt failed" and not self.listening:
            self.sock.listen(8)
            self.listening = True


@pytest.fixture
def opens_after_first_failure() -> Iterator[tuple[int, ListenAfterFirstFailure]]:
    logger = logging.getLogger("sonde_exporter.probe")
    level = logger.level
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        hook = ListenAfterFirstFailure(sock)
        logger.addHandler(hook)
        logger.setLevel(logging.WARNING)
        try:
            yield sock.getsockname()[1], hook
        finally:
            logger.removeHandler(hook)
            logger.setLevel(level)


RETRIES = """
modules:
  plain:
    prober: tcp
    timeout: 5s
  retry:
    prober: tcp
    timeout: 5s
    retries: {max: 2, delay: 10ms}
  retry_ok:
    prober: tcp
    timeout: 2s
    tcp:
      query_response:
        - expect: "^OK"
    retries: {max: 1, delay: 0s}
  retry_any:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^(OK|BAD)"
    retries: {max: 1, delay: 0s, on: [any]}
    assertions:
      - {source: response_data, comparison: equals, target: "OK\\r\\n"}
  retry_network_only:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^(OK|BAD)"
    retries: {max: 1, delay: 0s}
    assertions:
      - {source: response_data, comparison: equals, target: "OK\\r\\n"}
  retry_slow_backoff:
    prober: tcp
    timeout: 5s
    retries: {max: 2, backoff: exponential, delay: 500ms}
"""


async def test_refused_first_then_succeeds_on_the_second_attempt(
    exporter_client, opens_after_first_failure
):
    port, hook = opens_after_first_failure
    client = await exporter_client(RETRIES)
    metrics, _ = await checked_probe(client, module="retry", target=f"127.0.0.1:{port}")
    assert hook.listening
    assert metrics["probe_success"] == 1
    assert metrics["probe_attempts"] == 2
    assert attempt_failures(metrics) == [
        'probe_attempt_failure_reason{attempt="1",reason="connect_refused"}'
    ]
    assert failure_reason_series(metrics) == {}


async def test_reset_first_then_succeeds_and_at_once_is_told_apart(exporter_client, tcp_server):
    client = await exporter_client(RETRIES)
    port = await tcp_server(Connections("reset"))
    metrics, _ = await checked_probe(client, module="retry_ok", target=f"127.0.0.1:{port}")
    assert (metrics["probe_success"], metrics["probe_attempts"]) == (1, 2)
    assert attempt_failures(metrics) == [
        'probe_attempt_failure_reason{attempt="1",reason="io_error"}'
    ]
    # The same module against a server that answers at once: one attempt, no failures.
    metrics, _ = await checked_probe(client, module="retry_ok", target=f"127.0.0.1:{port}")
    assert (metrics["probe_success"], metrics["probe_attempts"]) == (1, 1)
    assert attempt_failures(metrics) == []


async def test_a_silent_first_attempt_times_out_at_its_share(exporter_client, tcp_server):
    """timeout 2s, max 1: the first attempt gets (2s - 0s of delays) / 2 attempts = 1s."""
    client = await exporter_client(RETRIES)
    port = await tcp_server(Connections("silent"))
    metrics, _ = await checked_probe(client, module="retry_ok", target=f"127.0.0.1:{port}")
    assert (metrics["probe_success"], metrics["probe_attempts"]) == (1, 2)
    assert attempt_failures(metrics) == [
        'probe_attempt_failure_reason{attempt="1",reason="timeout"}'
    ]
    # At least the first attempt's share, (2s - the time before it started) / 2, which is
    # above 0.9s unless the first attempt began 200ms late; below the 2s deadline.
    assert 0.9 <= metrics["probe_duration_seconds"] < 2


async def test_retries_exhausted_list_every_attempt(exporter_client, closed_port):
    client = await exporter_client(RETRIES)
    target = f"127.0.0.1:{closed_port}"
    metrics, _ = await checked_probe(client, module="retry", target=target)
    assert (metrics["probe_success"], metrics["probe_attempts"]) == (0, 3)
    assert attempt_failures(metrics) == [
        f'probe_attempt_failure_reason{{attempt="{n}",reason="connect_refused"}}' for n in (1, 2, 3)
    ]
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="connect_refused"}': 1}
    debug = await debug_text(client, module="retry", target=target)
    for n in (1, 2, 3):
        line = next(x for x in debug.splitlines() if f"attempt={n} " in x)
        assert "Attempt failed" in line and "reason=connect_refused" in line
        assert "duration_seconds=" in line and "budget_seconds=" in line


async def test_a_retry_that_cannot_start_in_time_is_not_started(exporter_client, closed_port):
    """Scrape timeout 2s - 0.5s offset = 1.5s deadline. Retry 1 waits 0.5s and starts (0.9s
    of slack for a slow box); retry 2 would wait 1s more, past the deadline, so it never
    starts, and the probe answers without waiting for the deadline."""
    client = await exporter_client(RETRIES)
    response = await client.get(
        "/probe",
        params={"module": "retry_slow_backoff", "target": f"127.0.0.1:{closed_port}"},
        headers={TIMEOUT_HEADER: "2"},
    )
    body = await response.text()
    promtool_check(body)
    metrics = parse_metrics(body)
    assert (metrics["probe_success"], metrics["probe_attempts"]) == (0, 2)
    assert metrics["probe_timeout_seconds"] == 1.5
    assert 0.5 <= metrics["probe_duration_seconds"] < 1.5
    assert len(attempt_failures(metrics)) == 2
    debug = await (
        await client.get(
            "/probe",
            params={
                "module": "retry_slow_backoff",
                "target": f"127.0.0.1:{closed_port}",
                "debug": "true",
            },
            headers={TIMEOUT_HEADER: "2"},
        )
    ).text()
    assert "Retry not started: too little time left after its backoff" in debug
    # Retry 2 could never fit, so the first attempt's share kept no room for it:
    # (1.5s - 0.5s of delay) / 2 attempts.
    # (0.4 allows 0.2s between the request's arrival and the first attempt on a busy box.)
    budget = re.search(r"attempt=1 duration_seconds=\S+ budget_seconds=(\S+)", debug)
    assert budget is not None and 0.4 < float(budget.group(1)) <= 0.5
    assert "attempt=3 backoff_seconds=1.0 " in debug


async def test_retry_on_any_retries_a_failed_assertion(exporter_client, tcp_server):
    client = await exporter_client(RETRIES)
    port = await tcp_server(Connections("wrong answer"))
    metrics, _ = await checked_probe(client, module="retry_any", target=f"127.0.0.1:{port}")
    assert (metrics["probe_success"], metrics["probe_attempts"]) == (1, 2)
    assert attempt_failures(metrics) == [
        'probe_attempt_failure_reason{attempt="1",reason="assertion_failed"}'
    ]
    # The last attempt's metrics: its assertion held.
    assert (
        metrics['probe_assertion_success{assertion="0",comparison="equals",source="response_data"}']
        == 1
    )


async def test_network_error_retries_leave_an_assertion_failure_alone(exporter_client, tcp_server):
    client = await exporter_client(RETRIES)
    port = await tcp_server(Connections("wrong answer"))
    metrics, _ = await checked_probe(
        client, module="retry_network_only", target=f"127.0.0.1:{port}"
    )
    assert (metrics["probe_success"], metrics["probe_attempts"]) == (0, 1)
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="assertion_failed"}': 1}


async def test_a_module_without_policies_adds_no_metric(exporter_client, closed_port):
    client = await exporter_client(RETRIES)
    _, body = await checked_probe(client, module="plain", target=f"127.0.0.1:{closed_port}")
    assert not any(name in body for name in NEW_FAMILIES)


SPEED = """
modules:
  degraded:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^OK"
    degraded_response_time: 100ms
    max_response_time: 4s
  degraded_relaxed:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^OK"
    degraded_response_time: 2s
    max_response_time: 4s
  too_slow:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^OK"
    degraded_response_time: 50ms
    max_response_time: 100ms
"""


async def answer_late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(0.3)
    await answer_ok(reader, writer)


async def test_degraded_and_too_slow(exporter_client, tcp_server):
    """The late server answers after 0.3s, so the response time is at least that on any box:
    over 100ms (degraded) and 100ms (too slow). The fast one answers at once: a loopback
    dialogue takes about 1ms idle, far below 2s even on a loaded 2-core box."""
    client = await exporter_client(SPEED)
    late = f"127.0.0.1:{await tcp_server(answer_late)}"
    fast = f"127.0.0.1:{await tcp_server(answer_ok)}"

    metrics, _ = await checked_probe(client, module="degraded", target=late)
    assert (metrics["probe_success"], metrics["probe_degraded"]) == (1, 1)
    assert failure_reason_series(metrics) == {}

    metrics, _ = await checked_probe(client, module="degraded_relaxed", target=fast)
    assert (metrics["probe_success"], metrics["probe_degraded"]) == (1, 0)

    metrics, _ = await checked_probe(client, module="too_slow", target=late)
    assert (metrics["probe_success"], metrics["probe_degraded"]) == (0, 0)
    assert failure_reason_series(metrics) == {'probe_failure_reason{reason="too_slow"}': 1}
    debug = await debug_text(client, module="too_slow", target=late)
    assert "is over max_response_time 0.1s" in debug


INVERTED = """
modules:
  must_be_closed:
    prober: tcp
    timeout: 2s
    should_fail: true
"""


async def test_inverted_closed_port_passes_and_open_port_fails(
    exporter_client, tcp_server, closed_port
):
    client = await exporter_client(INVERTED)
    metrics, _ = await checked_probe(
        client, module="must_be_closed", target=f"127.0.0.1:{closed_port}"
    )
    assert (metrics["probe_success"], metrics["probe_raw_success"]) == (1, 0)
    assert metrics['probe_raw_failure_reason{reason="connect_refused"}'] == 1
    assert failure_reason_series(metrics) == {}
    debug = await debug_text(client, module="must_be_closed", target=f"127.0.0.1:{closed_port}")
    assert "Checks failed, as should_fail expects" in debug and "connect_refused" in debug

    open_port = await tcp_server(hold_open)
    metrics, body = await checked_probe(
        client, module="must_be_closed", target=f"127.0.0.1:{open_port}"
    )
    assert (metrics["probe_success"], metrics["probe_raw_success"]) == (0, 1)
    assert failure_reason_series(metrics) == {
        'probe_failure_reason{reason="unexpected_success"}': 1
    }
    assert "probe_raw_failure_reason" not in body
