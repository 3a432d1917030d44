"""The processes a bench starts: each in its own session, all stopped on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any


class BenchError(RuntimeError):
    """A setup problem worth one clear line (missing binary, exporter that will not start)."""


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


class Children:
    """Every process this run starts; stop_all() stops them, newest first."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it lingers.

        Only while the leader lives: once it is reaped its pid (= group id) may be reused.
        """
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)

    def stop_all(self) -> None:
        while self._procs:
            self.stop(self._procs.pop())


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def exit_on_signals() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into SystemExit, so `finally` stops the children.

    SIGINT too: a shell may start a background job with SIGINT ignored, and Ctrl-C must still
    stop everything; the children run in their own sessions, so cleanup is ours."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)
