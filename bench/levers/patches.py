"""Lever experiments for `python -m bench.compare --variant`: patches applied to sonde-exporter
at start.

Each launcher script in this folder applies some of these and runs sonde's CLI. They live in
bench/ only; src/ is untouched. Some are not shippable as they stand (they drop features);
they measure what a feature costs on the hot path, to judge a cheaper way to keep it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def use_uvloop() -> None:
    """uvloop's event loop instead of asyncio's (needs `pip install uvloop`)."""
    import uvloop

    uvloop.install()


def drop_probe_log() -> None:
    """No per-probe debug log lines (they feed ?debug=true and /logs): their cost bound."""
    from sonde_exporter.probers import base

    def drop(self: object, message: str, **fields: object) -> None:
        return None

    for level in ("debug", "info", "warn", "error"):
        setattr(base.ProbeLog, level, drop)


class _Null:
    def labels(self, *values: str) -> _Null:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def dec(self, amount: float = 1) -> None:
        return None

    def observe(self, value: float) -> None:
        return None


def null_self_metrics() -> None:
    """Skip the prometheus_client updates made for every probe: their cost bound."""
    from sonde_exporter import selfmetrics

    init = selfmetrics.SelfMetrics.__init__

    def init_null(self: selfmetrics.SelfMetrics) -> None:
        init(self)
        self.probes = self.probe_duration = self.in_flight = _Null()  # type: ignore[assignment]

    selfmetrics.SelfMetrics.__init__ = init_null  # type: ignore[method-assign]


def no_history() -> None:
    """--history.limit 0: no ProbeResult kept per probe."""
    sys.argv += ["--history.limit", "0"]


def run(*patches: Callable[[], None]) -> None:
    for patch in patches:
        patch()
    from sonde_exporter.cli import main

    sys.exit(main(sys.argv[1:]))


def reuse_port_workers(workers: int) -> Callable[[], None]:
    """N worker processes sharing the listen port through SO_REUSEPORT.

    Each worker has its own history and self-metrics, which is what a real version must solve;
    this only measures what the extra process buys in throughput and costs in CPU and memory.
    """

    def patch() -> None:
        from aiohttp import web

        init = web.TCPSite.__init__

        def init_reuse_port(self: web.TCPSite, *args: object, **kwargs: object) -> None:
            kwargs["reuse_port"] = True
            init(self, *args, **kwargs)  # type: ignore[arg-type]

        web.TCPSite.__init__ = init_reuse_port  # type: ignore[method-assign]
        for _ in range(workers - 1):
            if os.fork() == 0:
                break

    return patch
