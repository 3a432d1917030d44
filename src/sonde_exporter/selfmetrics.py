"""The exporter's own metrics, served on /metrics.

Each server gets its own registry, so several can live in one process (the tests do that).
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from . import __version__
from .icmp_socket import IcmpSocketCollector
from .probers.mailbox import COUNTERS as EMAIL_COUNTERS

# No *_created series: they would double /metrics, and blackbox_exporter has none either.
disable_created_metrics()  # type: ignore[no-untyped-call]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.probes = Counter(
            "sonde_probes_total",
            "Probes run, by module and result",
            ("module", "result"),
            registry=r,
        )
        self.probe_duration = Histogram(
            "sonde_probe_duration_seconds",
            "Wall time of each probe, by module",
            ("module",),
            buckets=_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("sonde_probes_in_flight", "Probes running right now", registry=r)
        self.module_unknown = Counter(
            "sonde_module_unknown_total",
            "Probe requests naming a module that is not configured",
            registry=r,
        )
        self.reload_ok = Gauge(
            "sonde_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            registry=r,
        )
        self.reload_time = Gauge(
            "sonde_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            registry=r,
        )
        self.unsupported_modules = Gauge(
            "sonde_config_unsupported_module_info",
            "1 for each module whose prober only blackbox_exporter has; probing it answers 400",
            ("module", "prober"),
            registry=r,
        )
        r.register(IcmpSocketCollector())
        for counter in EMAIL_COUNTERS:  # late and stale probe mails, shared by all modules
            r.register(counter)
        Info("sonde_exporter_build", "Version of sonde-exporter", registry=r).info(
            {"version": __version__, "python_version": platform.python_version()}
        )

    def config_loaded(self, ok: bool, now: float) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(now)
