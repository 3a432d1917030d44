"""Accept errors (EMFILE, ENFILE, ENOBUFS...) logged at most once per interval, with a count.

An accept that fails for want of resources fails again at once, as long as the connection
waits in the backlog: asyncio's own accept loop logs each attempt with a traceback (1.8
million lines in three minutes was seen). Here the first error is logged when it happens,
and the ones after it are counted into the next line, at most one every INTERVAL seconds.
"""

from __future__ import annotations

import logging
import math

from ..logs import fields

INTERVAL = 60.0
logger = logging.getLogger("sonde_exporter")


class AcceptErrorLog:
    def __init__(self, interval: float = INTERVAL) -> None:
        self._interval = interval
        self._next_line = -math.inf
        self._count = 0

    def record(self, exc: OSError, now: float) -> None:
        """Count `exc`; log it with the errors counted since the last line, if one is due."""
        self._count += 1
        if now < self._next_line:
            return
        logger.warning(
            "Cannot accept connections",
            extra=fields(
                err=exc.strerror or str(exc), errors=self._count, per=f"{self._interval:g}s"
            ),
        )
        self._count = 0
        self._next_line = now + self._interval
