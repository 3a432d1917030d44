"""Connection bounds on the real process (listening.*): a flood of idle or half-sent
connections neither starves the server nor stays open, TLS handshakes that never finish are
bounded, the soft descriptor limit is raised, and accept errors are logged rate-limited.

The server runs with RLIMIT_NOFILE soft = hard = 1024 (the common default) and short timeouts
(header 2 s, idle 3 s), so that a flood far beyond its descriptors is over in seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import select
import socket
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from processes import LoopbackServer, Process, wait_for
from tcpservers import Pki

from sonde_exporter.cli import parse_args
from sonde_exporter.listening import ConnectionLimits, Listeners
from sonde_exporter.listening.accepterrors import AcceptErrorLog

EXPORTER = [sys.executable, "-m", "sonde_exporter"]
CONFIG = "modules:\n  tcp:\n    prober: tcp\n    timeout: 2s\n"
HEADER_TIMEOUT, IDLE_TIMEOUT = 2.0, 3.0
# Timers fire late on a loaded 2-core box (the flood itself loads it): a connection counts as
# closed in time when it is closed within its timeout plus this.
SLACK = 3.0
# A health check must answer within this while the flood is held (the bound). It
# holds with the box loaded: an idle connection gives way to a new one at once, and the test
# opens connections in bursts below the listen backlog, so no SYN waits for a retransmission.
HEALTHY_WITHIN = 1.0
BURST = 200


def _fd_limit(soft: int, hard: int) -> Callable[[], None]:
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Exporter(Process):
    def __init__(self, directory: Path, *flags: str, fds: tuple[int, int] = (1024, 1024)) -> None:
        config = directory / "config.yml"
        config.write_text(CONFIG)
        argv = [
            *EXPORTER,
            "--config.file",
            str(config),
            "--web.listen-address",
            "127.0.0.1:0",
            "--storage.path",
            ":memory:",
            "--monitors.scheduler",
            "off",
            "--web.read-header-timeout",
            f"{HEADER_TIMEOUT:g}s",
            "--web.idle-timeout",
            f"{IDLE_TIMEOUT:g}s",
            *flags,
        ]
        super().__init__("sonde-exporter", argv, directory, preexec_fn=_fd_limit(*fds))
        self.port = self.wait_listening()
        wait_for("Started in the log", lambda: "Started sonde-exporter" in self.log())

    def listen_queue(self) -> int:
        """Connections waiting in the kernel's accept queue of the listening socket."""
        for line in Path(f"/proc/{self.pid}/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == self.port:
                return int(fields[4].split(":")[1], 16)
        raise AssertionError("the listening socket is gone")


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Callable[..., Exporter]]:
    started: list[Exporter] = []

    def start(*flags: str, **kwargs: tuple[int, int]) -> Exporter:
        started.append(Exporter(tmp_path, *flags, **kwargs))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture(autouse=True)
def enough_descriptors() -> Iterator[None]:
    """The test client holds thousands of sockets: raise its own limit (root may)."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(before[0], 20_000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(before[1], want)))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


class Watcher:
    """Meanwhile, in a thread: /-/healthy on a new connection, timed, and a /probe of a
    loopback listener, over and over."""

    def __init__(self, port: int, target: LoopbackServer) -> None:
        self._base = f"http://127.0.0.1:{port}"
        self._target = target
        self.health_times: list[float] = []
        self.probes: list[bool] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(self._base + path, timeout=10) as response:
            return response.read().decode()

    def _run(self) -> None:
        try:
            self._check()
        except BaseException as exc:  # handed to the test by stop()
            self.error = exc

    def _check(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            assert self._get("/-/healthy") == "Healthy\n"
            self.health_times.append(time.monotonic() - started)
            body = self._get(f"/probe?module=tcp&target=127.0.0.1:{self._target.port}")
            self.probes.append("probe_success 1" in body.splitlines())
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


class Flood:
    """Client sockets held open, each noting when the server closed it."""

    def __init__(self) -> None:
        self._poll = select.epoll()
        self._socks: dict[int, tuple[socket.socket, float]] = {}
        self.lifetimes: list[float] = []

    def open(self, exporter: Exporter, count: int, send: bytes = b"") -> None:
        """`count` connections in bursts below the backlog, each sending `send`."""
        for start in range(0, count, BURST):
            burst = []
            for _ in range(min(BURST, count - start)):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", exporter.port))
                burst.append(sock)
                self._socks[sock.fileno()] = (sock, time.monotonic())
            for sock in burst:
                select.select([], [sock], [], 10)
                if send:
                    sock.send(send)
                self._poll.register(sock, select.EPOLLIN | select.EPOLLRDHUP)
            self.collect(0)
            wait_for("the listen queue to drain", lambda: exporter.listen_queue() == 0, 10, 0.01)

    def collect(self, timeout: float) -> None:
        """Note the sockets the server closed (end of file or reset)."""
        for fd, _ in self._poll.poll(timeout):
            sock, opened = self._socks.pop(fd)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            assert data == b"", f"the server answered a connection that sent nothing: {data!r}"
            self.lifetimes.append(time.monotonic() - opened)
            self._poll.unregister(sock)
            sock.close()

    def wait_all_closed(self, within: float) -> None:
        deadline = time.monotonic() + within
        while self._socks and time.monotonic() < deadline:
            self.collect(0.1)
        assert not self._socks, f"{len(self._socks)} connections still open after {within}s"

    def close(self) -> None:
        for sock, _ in self._socks.values():
            sock.close()
        self._poll.close()


@pytest.fixture
def flood() -> Iterator[Flood]:
    client = Flood()
    yield client
    client.close()


@pytest.mark.parametrize(
    ("count", "send"),
    [(5000, b""), (2000, b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n")],
    ids=["idle", "partial-headers"],
)
def test_a_flood_of_connections_neither_starves_the_server_nor_stays_open(
    exporter, flood: Flood, count: int, send: bytes
) -> None:
    server = exporter()
    target = LoopbackServer()
    watcher = Watcher(server.port, target)
    try:
        wait_for("a first health check", lambda: watcher.probes or watcher.error, 10)
        flood.open(server, count, send)
        flood.wait_all_closed(HEADER_TIMEOUT + SLACK)
    finally:
        watcher.stop()
        target.close()
    assert len(flood.lifetimes) == count
    assert max(flood.lifetimes) <= HEADER_TIMEOUT + SLACK
    assert watcher.health_times and max(watcher.health_times) <= HEALTHY_WITHIN
    assert watcher.probes and all(watcher.probes)
    log = server.log().splitlines()
    assert len(log) < 100, "\n".join(log[:20])
    assert not any("Traceback" in line or "level=error" in line for line in log), log


def test_the_bound_leaves_descriptors_for_probes_and_says_so(exporter) -> None:
    server = exporter()
    log = server.log()
    assert "fd_limit=1024 max_connections=384" in log
    assert "Lowered --web.max-connections" in log and "requested=512" in log


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(exporter) -> None:
    server = exporter(fds=(1024, 4096))
    limits = Path(f"/proc/{server.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line
    assert "fd_limit=4096 max_connections=512" in server.log()
    assert "Lowered" not in server.log()


def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(exporter, flood: Flood) -> None:
    server = exporter()
    request = b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(20)]
    opened = time.monotonic()
    for sock in socks:
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    closed = []
    for sock in socks:
        sock.settimeout(IDLE_TIMEOUT + SLACK)
        assert sock.recv(4096) == b""  # the server hung up
        closed.append(time.monotonic() - opened)
        sock.close()
    # Not at the header deadline (2 s after connecting): the request came in time.
    assert HEADER_TIMEOUT < IDLE_TIMEOUT - 0.5 <= min(closed)
    assert max(closed) <= IDLE_TIMEOUT + SLACK


def test_at_the_bound_a_new_connection_takes_the_place_of_the_oldest_idle_one(exporter) -> None:
    # A long idle timeout: only the bound may close these connections during the test.
    server = exporter("--web.max-connections", "4", "--web.idle-timeout", "60s")
    request = b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    def served() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        return sock

    idle = [served() for _ in range(4)]
    try:
        # At the bound with no connection waiting to be accepted: none of them is closed.
        assert select.select(idle, [], [], 1.0)[0] == []
        newcomer = served()
        newcomer.close()
        assert idle[0].recv(4096) == b""  # the oldest idle one made room (10 s timeout)
        assert select.select(idle[1:], [], [], 0.5)[0] == []
    finally:
        for sock in idle:
            sock.close()


def test_tls_handshakes_that_never_finish_are_closed(exporter, pki: Pki, flood: Flood) -> None:
    pki.leaf.cert_chain_pems[0].write_to_path(pki.dir / "server.crt")
    pki.leaf.private_key_pem.write_to_path(pki.dir / "server.key")
    web_file = pki.dir / "web.yml"
    web_file.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    server = exporter("--web.config.file", str(web_file))
    # Half a ClientHello's record header: the handshake starts and never finishes.
    flood.open(server, 1000, send=b"\x16\x03\x01")
    flood.wait_all_closed(HEADER_TIMEOUT + SLACK)
    assert max(flood.lifetimes) <= HEADER_TIMEOUT + SLACK
    context = ssl.create_default_context(cafile=pki.ca_file)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
    assert len(server.log().splitlines()) < 100


def test_accept_errors_are_logged_once_per_interval_with_a_count(caplog) -> None:
    errors = AcceptErrorLog(interval=60)
    emfile = OSError(24, "Too many open files")
    with caplog.at_level(logging.WARNING, logger="sonde_exporter"):
        for attempt in range(1000):
            errors.record(emfile, now=attempt * 0.15)  # 150 s of a failing accept
    lines = [r for r in caplog.records if r.getMessage() == "Cannot accept connections"]
    assert [dict(r.fields)["errors"] for r in lines] == [1, 400, 400]  # at 0 s, 60 s, 120 s
    assert all(r.exc_info is None for r in lines)


async def test_a_real_emfile_is_logged_once_and_the_listener_recovers(caplog) -> None:
    """Out of descriptors for real: the soft limit of this process is lowered to what it holds,
    so every accept fails with EMFILE until it is restored."""
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    listeners = Listeners(runner, 10, ConnectionLimits(), None)
    listeners.listen("127.0.0.1", 0)
    port = listeners.sockets[0].getsockname()[1]
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    client = socket.socket()
    client.setblocking(False)
    try:
        with caplog.at_level(logging.WARNING, logger="sonde_exporter"):
            with socket.socket() as probe:  # the lowest free descriptor: no new one below the limit
                lowest_free = probe.fileno()
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, before[1]))
            client.connect_ex(("127.0.0.1", port))
            await asyncio.sleep(1.5)  # accepts retried with back-off: 5 ms, 10 ms, ... 640 ms
            resource.setrlimit(resource.RLIMIT_NOFILE, before)
            reader, writer = await asyncio.wait_for(asyncio.open_connection(sock=client), timeout=5)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(4096), timeout=5)
            assert answer.startswith(b"HTTP/1.1 200")
            writer.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
        await listeners.close()
        await runner.cleanup()
    lines = [r for r in caplog.records if r.getMessage() == "Cannot accept connections"]
    assert len(lines) == 1 and dict(lines[0].fields)["err"] == "Too many open files"
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--web.max-connections", "-1"], "expected a whole number"),
        (["--web.read-header-timeout", "0s"], "must be a positive duration"),
        (["--web.idle-timeout", "soon"], "invalid duration"),
    ],
)
def test_bad_connection_flags_are_refused(capsys, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_connection_flag_defaults() -> None:
    args = parse_args([])
    assert (args.max_connections, args.header_timeout, args.idle_timeout) == (512, 10.0, 75.0)


@pytest.mark.parametrize(
    ("request_bytes", "api"),
    [
        (b"GET /v1/tcp-monitors HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", True),
        (b"POST /V1/tcp-monitors HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", True),
        (b"G\x00T /v1 HTTP/1.1\r\n\r\n", True),
        (b"GET /probe HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", False),
        (b"BLAH\r\n\r\n", False),
    ],
)
def test_a_request_that_cannot_be_parsed_gets_a_one_line_400_and_logs_no_traceback(
    exporter, request_bytes: bytes, api: bool
) -> None:
    """aiohttp answers these before any route: with the exporter's own answer, the API's
    envelope for a /v1 request line, and a debug line instead of a traceback at error level
    per request (which any client could fill the log with)."""
    server = exporter()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request_bytes)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 400 Bad Request")
        if api:
            assert b"application/json" in head
            error = json.loads(body)["error"]
            assert error["code"] == "VALIDATION_ERROR" and error["message"].startswith("request: ")
        else:
            assert body.startswith(b"400 Bad Request: ") and body.count(b"\n") == 1
    log = server.log()
    assert "Traceback" not in log and "level=error" not in log, log[-2000:]
