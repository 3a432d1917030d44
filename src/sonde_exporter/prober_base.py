"""What every prober shares: the probe context, the failure type and the set of reasons.

A prober is an async function `probe(target, module, ctx)`. It returns normally when the
probe succeeded and raises ProbeFailure (with one of the reasons below) when it did not.
Whoever runs the prober owns the deadline (the handler, or the policy engine per attempt):
it cancels the prober when time is up and reports the timeout reason of the step that was
running. The low-level pieces (resolve, connect, targets) speak this module's language too,
which is why it sits beside them rather than inside probers/.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from .logs import quote, timestamp
from .probe_metrics import ProbeGauge, ProbeMetrics

RESPONSE_DATA_LIMIT = 64 * 1024
"""Most bytes of a TCP dialogue kept for `response_data` assertions."""


class Reason(StrEnum):
    """The fixed set of `probe_failure_reason{reason=...}` values (documented in docs/metrics.md)."""

    DNS = "dns"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECT_ERROR = "connect_error"
    TLS_HANDSHAKE = "tls_handshake"
    TLS_VERIFY = "tls_verify"
    EXPECT_MISMATCH = "expect_mismatch"
    TIMEOUT = "timeout"
    IO_ERROR = "io_error"
    INTERNAL = "internal_error"
    ICMP_PERMISSION = "icmp_permission"
    PACKET_LOSS = "packet_loss"
    # email: which side failed, and how
    SMTP_CONNECT = "smtp_connect"
    SMTP_TLS = "smtp_tls"
    SMTP_AUTH = "smtp_auth"
    SMTP_REJECTED = "smtp_rejected"
    SMTP_ERROR = "smtp_error"
    RECEIVE_CONNECT = "receive_connect"
    RECEIVE_TLS = "receive_tls"
    RECEIVE_AUTH = "receive_auth"
    RECEIVE_ERROR = "receive_error"
    NOT_DELIVERED = "not_delivered"
    # probe policies (probing/): the verdict on what the prober observed
    TOO_SLOW = "too_slow"
    ASSERTION_FAILED = "assertion_failed"
    UNEXPECTED_SUCCESS = "unexpected_success"
    # scheduled monitors only (/probe answers 403): the IP filter refused the target
    TARGET_FORBIDDEN = "target_forbidden"


class ProbeFailure(Exception):
    """Raised by a prober to fail the probe with a reason and a human-readable message."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TargetError(ValueError):
    """A target the prober cannot accept; the handler answers 400 with this message."""


_probe_logger = logging.getLogger("sonde_exporter.probe")


@dataclass(slots=True)
class LogLine:
    at: float
    level: str
    message: str
    fields: tuple[tuple[str, Any], ...]

    def format(self) -> str:
        parts = [f"ts={timestamp(self.at)}", f"level={self.level}", f"msg={quote(self.message)}"]
        parts += [f"{key}={quote(str(value))}" for key, value in self.fields]
        return " ".join(parts)


@dataclass(slots=True)
class ProbeLog:
    """The debug log of one probe: kept for ?debug=true and the history.

    Each line also goes to the `sonde_exporter.probe` logger, whose level is --log.prober.
    """

    lines: list[LogLine] = field(default_factory=list)
    bound: tuple[tuple[str, Any], ...] = ()
    """Fields added to the lines sent to the logger (module, target), not to the debug text."""

    def _add(self, level: str, levelno: int, message: str, fields: dict[str, Any]) -> None:
        line = LogLine(time.time(), level, message, tuple(fields.items()))
        self.lines.append(line)
        if _probe_logger.isEnabledFor(levelno):
            _probe_logger.log(levelno, message, extra={"fields": (*self.bound, *line.fields)})

    def debug(self, message: str, **fields: Any) -> None:
        self._add("debug", logging.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._add("info", logging.INFO, message, fields)

    def warn(self, message: str, **fields: Any) -> None:
        self._add("warn", logging.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._add("error", logging.ERROR, message, fields)


@dataclass(slots=True)
class ProbeContext:
    """Everything a prober gets besides its target and module."""

    metrics: ProbeMetrics
    log: ProbeLog
    deadline: float
    """Event-loop time (loop.time()) by which the probe must be done."""
    hostname: str | None = None
    """The ?hostname= parameter: TLS server name when the module sets none."""
    timeout_reason: Reason = Reason.TIMEOUT
    """What a timeout means right now; phases set it (a timeout in connect is connect_timeout)."""
    observed: dict[str, float] | None = None
    """What the probe policies judge (response_time, rtt_avg, ...): None when the module has
    no policy, so a plain probe records nothing."""
    response_data: bytearray | None = None
    """What a TCP dialogue read, capped (see record_read); None when no policy reads it."""
    address: str | None = None
    """The IP address the probe chose for its target (resolve.py): where a traceroute goes."""

    def observe(self, **values: float) -> None:
        """Record values the policies judge, under their assertion source names."""
        if self.observed is not None:
            self.observed.update(values)

    def record_read(self, data: bytes) -> None:
        """Keep bytes read from the peer for response_data, up to RESPONSE_DATA_LIMIT."""
        kept = self.response_data
        if kept is not None and len(kept) < RESPONSE_DATA_LIMIT:
            kept += data[: RESPONSE_DATA_LIMIT - len(kept)]

    @contextmanager
    def phase(
        self, gauge: ProbeGauge, name: str, timeout_reason: Reason = Reason.TIMEOUT
    ) -> Iterator[None]:
        """Time one phase into `gauge{phase=name}`; a timeout inside it is `timeout_reason`.

        The reason stays set when the phase ends by an exception: the handler reads it after
        the deadline's cancellation has unwound the phase.
        """
        self.timeout_reason = timeout_reason
        start = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.set(gauge, time.perf_counter() - start, name)
        self.timeout_reason = Reason.TIMEOUT


TargetT = TypeVar("TargetT")
ModuleT = TypeVar("ModuleT")


@dataclass(frozen=True, slots=True)
class Prober(Generic[TargetT, ModuleT]):
    """One row of the prober table: how to read a target, and how to probe it."""

    parse_target: Callable[[str], TargetT]
    """Raise TargetError for a target this prober cannot accept (answered with 400)."""
    probe: Callable[[TargetT, ModuleT, ProbeContext], Awaitable[None]]
    accepts_empty_target: bool = False
    """An empty target= goes to parse_target instead of being a 400 (email: the module's URL)."""
