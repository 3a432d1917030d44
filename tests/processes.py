"""Real processes for the integration tests: start them, find the port they listen on, stop them.

Servers are started on port 0 and the port the kernel chose is read back from /proc (the
process's listening sockets), so tests never race other tests for a port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp
T = TypeVar("T")


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.05
) -> T:
    """Poll `check()` until it returns something truthy and return that; fail naming `what`
    after `timeout` seconds. Tests wait on observable state this way, never on a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process `pid` listens on, in its own network namespace."""
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Process:
    """A child process with its output in a log file, stopped by pid (never by name)."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, **popen: object) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, **popen
        )

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 20.0) -> int:
        """The one port the process listens on, once it does; fails with its log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log()}"
                )
            ports = listening_ports(self.pid)
            if len(ports) == 1:
                return ports.pop()
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not listen within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()
        return int(self.proc.returncode)


def finish_by_stdin(proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    """Close the child's stdin, its cue to clean up and exit, and wait for it; kill it if it
    does not exit within `timeout`. Returns the exit status."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout)


class LoopbackServer:
    """A TCP (optionally TLS) listener on 127.0.0.1 that accepts, handshakes and hangs up.

    Runs in a thread so synchronous tests can use it while they poll other processes.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self.accepted += 1
                if self._tls is not None:
                    conn.settimeout(2)
                    with contextlib.suppress(OSError, ssl.SSLError):
                        self._tls.wrap_socket(conn, server_side=True).close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def refusing_port() -> socket.socket:
    """A socket bound to a loopback port without listening: connecting to it is refused.

    Keep the socket open while the port is in use, so nothing else can take the port.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock
