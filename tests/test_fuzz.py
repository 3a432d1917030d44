"""Hypothesis fuzzing of /probe: whatever the query string and headers, the answer is a 2xx or
4xx, never a 5xx or a traceback; a 200 is valid exposition text and a 400 is one line.

The exporter runs in a network namespace of its own with only loopback (fuzz_netns_runner.py,
started with `unshare --net`), so no fuzzed target can reach past this machine whatever the
code does. It serves on a Unix socket, which this process reaches from the host namespace, and
requests go over real HTTP so that raw query strings (bad escapes, repeated keys) reach it as
sent. Inside, loopback_guard also refuses any name but localhost and any address but loopback;
a test shows it holds, with the namespace underneath. Needs root (network namespaces): fails, never
skips, without it.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, quote_plus

import pytest
from helpers import parse_metrics
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from loopback_guard import GUARD
from processes import finish_by_stdin

from sonde_exporter.handler import TIMEOUT_HEADER

pytestmark = pytest.mark.root

RUNNER = Path(__file__).with_name("fuzz_netns_runner.py")
CONFIG = """
# Every module connects from 127.0.0.1 over IPv4 only: the kernel refuses to route a
# loopback source address anywhere but loopback (EINVAL), a third wall after the namespace
# and the runner's guard.
modules:
  tcp:
    prober: tcp
    timeout: 300ms
    tcp: &loopback
      source_ip_address: 127.0.0.1
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
  tcp_untimed:
    prober: tcp
    tcp: *loopback
  banner:
    prober: tcp
    timeout: 300ms
    tcp:
      <<: *loopback
      tls: false
      query_response:
        - expect: "^220"
        - send: "QUIT"
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP to a server listening on a Unix socket (the Host header says localhost)."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


@dataclass
class Server:
    """The exporter in its namespace: its Unix socket and what the runner reported."""

    socket_path: Path
    live_port: int  # a loopback port in the namespace that greets with "220" and hangs up
    interfaces: list[str]
    netns: str

    def get(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        connection = UnixHTTPConnection(self.socket_path)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", errors="replace")
        finally:
            connection.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if os.geteuid() != 0:
        pytest.fail("the fuzz test needs root: its exporter runs in a network namespace")
    workdir = tmp_path_factory.mktemp("fuzz")
    config, socket_path = workdir / "config.yml", workdir / "exporter.sock"
    config.write_text(CONFIG)
    stderr: IO[bytes] = (workdir / "runner.log").open("wb")
    runner = subprocess.Popen(
        ["unshare", "--net", "--", sys.executable, str(RUNNER), str(socket_path), str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert runner.stdin is not None and runner.stdout is not None
    try:
        line = runner.stdout.readline()
        if not line:
            runner.wait(10)
            pytest.fail(f"fuzz runner exited with {runner.returncode}:\n{_log(workdir)}")
        ready = json.loads(line)
        yield Server(socket_path, ready["live_port"], ready["interfaces"], ready["netns"])
    finally:
        status = finish_by_stdin(runner)
        stderr.close()
    assert status == 0, _log(workdir)


def _log(workdir: Path) -> str:
    return (workdir / "runner.log").read_text(errors="replace")[-4000:]


# Values worth hitting often, with {live} standing for a listening loopback port.
INTERESTING = [
    "tcp", "tcp_untimed", "banner", "", "true", "false", "TRUE", "1",
    "127.0.0.1:{live}", "localhost:{live}", "[::1]:{live}", "127.0.0.1:1", "127.0.0.1%3A{live}",
    "127.0.0.1%253A{live}", "10.1.2.3:80", "example.org:443", "[fe80::1%25lo]:22",
    "host:0", "host:99999", "a" * 256, "::1:80", "x\u0000y:1", "é.example:25", "\u202e:1",
    "%", "%zz", "%ff", "%C3%28", "%00", "+", "%2B", ";", "=", "&",
]  # fmt: skip
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
VALUES = st.one_of(st.sampled_from(INTERESTING), TEXT)
KEYS = st.one_of(st.sampled_from(["module", "target", "debug", "hostname"]), TEXT)
ENCODERS = {
    "quote": lambda s: quote(s, safe=""),
    "plus": quote_plus,
    "loose": lambda s: quote(s, safe="%&=+;:/[]@!$'()*,?"),  # leaves stray %, & and = raw
}
HEADER_VALUES = st.one_of(
    st.sampled_from(["", "0", "0.2", "1", "15", "-1", "nan", "inf", "1e999", "1_0", "0x10"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=20).map(
        lambda s: s.replace("\x7f", "")
    ),
)


TARGETS = st.sampled_from([v for v in INTERESTING if ":" in v])


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    pairs = []
    if draw(st.booleans()):  # half start as a plausible probe, to fuzz past the 400 checks
        module = draw(st.sampled_from(["tcp", "tcp_untimed", "banner"]))
        pairs = [("module", module), ("target", draw(TARGETS))]
    pairs += draw(st.lists(st.tuples(KEYS, VALUES), max_size=4))
    encode = ENCODERS[draw(st.sampled_from(sorted(ENCODERS)))]
    query = "&".join(f"{encode(k)}={encode(v)}" for k, v in pairs)
    query += draw(st.sampled_from(["", "&", "&&", "&=", "&target", "#frag", "&debug=true"]))
    headers = {}
    if draw(st.booleans()):
        headers[TIMEOUT_HEADER] = draw(HEADER_VALUES)
    if draw(st.booleans()):
        headers["Accept-Encoding"] = draw(st.sampled_from(["gzip", "deflate", "br", "*", "x"]))
    return draw(st.sampled_from(["GET", "GET", "HEAD"])), query, headers


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    suppress_health_check=[HealthCheck.too_slow],
)
@given(request=requests())
def test_probe_never_answers_5xx_or_a_traceback(server: Server, request) -> None:
    method, query, headers = request
    query = query.replace("%7Blive%7D", str(server.live_port)).replace(
        "{live}", str(server.live_port)
    )
    status, body = server.get(method, f"/probe?{query}", headers)
    event(f"status {status}")
    assert status < 500, body
    assert "Traceback" not in body
    if method == "HEAD":
        assert body == ""
    elif status == 400:
        assert body.endswith("\n") and body.count("\n") == 1, body
    elif status == 200 and "Logs for the probe:" not in body:
        assert parse_metrics(body)["probe_success"] in (0, 1)


def test_fuzzed_exporter_has_only_loopback(server: Server) -> None:
    """The wall that holds whatever the code does: no interface to leave by."""
    assert server.interfaces == ["lo"]
    assert server.netns != os.readlink("/proc/self/ns/net")


@pytest.mark.parametrize(
    ("target", "reason"), [("10.1.2.3:80", "connect_error"), ("example.org:443", "dns")]
)
def test_fuzz_guard_refuses_what_is_not_loopback(server: Server, target: str, reason: str) -> None:
    """The runner's guard holds (inside the namespace, so nothing could leave if it did not)."""
    status, body = server.get("GET", f"/probe?module=tcp&debug=true&target={target}")
    assert status == 200
    assert f'probe_failure_reason{{reason="{reason}"}} 1' in body
    assert GUARD in body
