"""Recent probe results for the status page and /logs, bounded by --history.limit.

Failures are what people come to look at, so a failure that ages out of the recent window
moves to a second window of the same size instead of being dropped (as blackbox_exporter).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .prober_base import LogLine, Reason


@dataclass(frozen=True, slots=True)
class ProbeResult:
    id: int
    module: str
    target: str
    success: bool
    reason: Reason | None
    duration: float
    started: float
    log: tuple[LogLine, ...]

    def log_text(self) -> str:
        return "".join(line.format() + "\n" for line in self.log)


class History:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids = itertools.count(1)
        self._recent: deque[ProbeResult] = deque()
        self._failures: deque[ProbeResult] = deque()

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, result: ProbeResult) -> None:
        if self.limit <= 0:
            return
        self._recent.append(result)
        if len(self._recent) > self.limit:
            old = self._recent.popleft()
            if not old.success:
                self._failures.append(old)
                if len(self._failures) > self.limit:
                    self._failures.popleft()

    def __iter__(self) -> Iterator[ProbeResult]:
        """Newest first: the recent window, then the older kept failures."""
        yield from reversed(self._recent)
        yield from reversed(self._failures)

    def __len__(self) -> int:
        return len(self._recent) + len(self._failures)

    def by_id(self, probe_id: int) -> ProbeResult | None:
        return next((r for r in self if r.id == probe_id), None)

    def by_target(self, target: str, module: str | None) -> ProbeResult | None:
        return next((r for r in self if r.target == target and module in (None, r.module)), None)
