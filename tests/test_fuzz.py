"""Hypothesis fuzzing of /probe: whatever the query string and headers, the answer is a 2xx or
4xx, never a 5xx or a traceback; a 200 is valid exposition text and a 400 is one line.

The exporter runs in this process on a loopback port, in a thread with its own event loop, and
requests go over real HTTP so that raw query strings (bad escapes, repeated keys) reach it as
sent. Fuzzed targets must never reach the network: that loop refuses to resolve any name but
localhost, and while this module runs sockets refuse to connect anywhere but loopback (at
the socket, so whichever way the prober connects), which the probe reports as a dns or
connect_error failure like any unreachable host.
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web
from helpers import parse_metrics
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sonde_exporter.exporter import Exporter
from sonde_exporter.handler import TIMEOUT_HEADER
from sonde_exporter.server import create_app

CONFIG = """
# Every module connects from 127.0.0.1 over IPv4 only: the kernel refuses to route a
# loopback source address anywhere but loopback (EINVAL), so no fuzzed target can leave
# this machine even if the guards below were bypassed.
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


def _is_local(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


class LoopbackOnlyLoop(asyncio.SelectorEventLoop):
    """An event loop that cannot reach past loopback (see the module docstring)."""

    async def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name != "localhost" and not _is_local(name):
            raise socket.gaierror(socket.EAI_NONAME, "fuzz test: names other than localhost")
        return await super().getaddrinfo(host, *args, **kwargs)


def _loopback_only(connect: Any) -> Any:
    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(str(address[0])):
            raise OSError(errno.ENETUNREACH, "fuzz test: loopback only")
        return connect(self, address)

    return guarded


@pytest.fixture(scope="module", autouse=True)
def loopback_only_sockets() -> Iterator[None]:
    """socket.connect and connect_ex refuse any address but loopback while this module runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("connect", "connect_ex"):
            patch.setattr(socket.socket, name, _loopback_only(getattr(socket.socket, name)))
        yield


class Server:
    def __init__(self, config_file: Path) -> None:
        self.exporter = Exporter.from_file(config_file)
        self.loop = LoopbackOnlyLoop()
        self._ready = threading.Event()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))
        self.port = self.live_port = 0

    async def _run(self) -> None:
        async def accept_and_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"220 fuzz\r\n")
            writer.close()

        target = await asyncio.start_server(accept_and_close, "127.0.0.1", 0)
        runner = web.AppRunner(create_app(self.exporter))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]
        self.live_port = target.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        target.close()
        await target.wait_closed()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10), "fuzz server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("fuzz") / "config.yml"
    path.write_text(CONFIG)
    with Server(path) as running:
        yield running


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
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, f"/probe?{query}", headers=headers)
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()
    event(f"status {response.status}")
    assert response.status < 500, body
    assert "Traceback" not in body
    if method == "HEAD":
        assert body == ""
    elif response.status == 400:
        assert body.endswith("\n") and body.count("\n") == 1, body
    elif response.status == 200 and "Logs for the probe:" not in body:
        assert parse_metrics(body)["probe_success"] in (0, 1)


@pytest.mark.parametrize(
    ("target", "reason"), [("10.1.2.3:80", "connect_error"), ("example.org:443", "dns")]
)
def test_fuzz_server_cannot_reach_past_loopback(server: Server, target: str, reason: str) -> None:
    """The guard above holds: were it bypassed, fuzzing could touch real hosts."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", f"/probe?module=tcp&debug=true&target={target}")
        body = connection.getresponse().read().decode()
    finally:
        connection.close()
    assert f'probe_failure_reason{{reason="{reason}"}} 1' in body
    assert "fuzz test:" in body
