"""The exporter's own metrics, served on /metrics.

Each server gets its own registry, so several can live in one process (the tests do that).
The ICMP sockets are the process's, so every registry reads the same ones.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from . import __version__
from .icmp.sockets import FAMILY_NAMES, SOCKETS, IcmpSockets
from .probers.email.counters import COUNTERS as EMAIL_COUNTERS

# No *_created series: they would double /metrics, and blackbox_exporter has none either.
disable_created_metrics()  # type: ignore[no-untyped-call]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class IcmpSocketCollector(Collector):
    """The socket mode per family, and what the shared ICMP sockets dropped or ignored.

    Creating it detects the modes, so the exporter logs them once at startup.
    """

    def __init__(self, sockets: IcmpSockets = SOCKETS) -> None:
        self._sockets = sockets
        for family in FAMILY_NAMES:
            sockets.support(family)

    def collect(self) -> Iterable[Metric]:
        mode = GaugeMetricFamily(
            "sonde_icmp_socket_mode",
            "ICMP socket type used for each IP protocol: datagram (unprivileged), raw, "
            "or none (ICMP probes fail with icmp_permission)",
            labels=("ip_protocol", "mode"),
        )
        for family, name in FAMILY_NAMES.items():
            mode.add_metric((name, self._sockets.support(family).mode.value), 1)
        drops = CounterMetricFamily(
            "sonde_icmp_receive_drops",
            "Packets the kernel dropped because a shared ICMP socket's receive buffer was full",
            labels=("ip_protocol",),
        )
        unmatched = CounterMetricFamily(
            "sonde_icmp_unmatched_replies",
            "Echo replies (and, while a traceroute runs, Time Exceeded messages) that matched no "
            "running probe: late, foreign or forged",
            labels=("ip_protocol",),
        )
        totals: dict[str, tuple[int, int]] = {}
        for endpoint in self._sockets.endpoints():
            name = FAMILY_NAMES[endpoint.family]
            dropped, ignored = totals.get(name, (0, 0))
            totals[name] = (dropped + endpoint.drops, ignored + endpoint.unmatched)
        for name, (dropped, ignored) in totals.items():
            drops.add_metric((name,), dropped)
            unmatched.add_metric((name,), ignored)
        return [mode, drops, unmatched]


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
        self._web_config: tuple[Gauge, Gauge] | None = None
        Info("sonde_exporter_build", "Version of sonde-exporter", registry=r).info(
            {"version": __version__, "python_version": platform.python_version()}
        )

    def config_loaded(self, ok: bool, now: float) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(now)

    def web_config_loaded(self, ok: bool, now: float) -> None:
        """Created on first use, so they show only when --web.config.file is given."""
        if self._web_config is None:
            self._web_config = (
                Gauge(
                    "sonde_web_config_last_reload_successful",
                    "Whether the web config file (--web.config.file) last loaded without error",
                    registry=self.registry,
                ),
                Gauge(
                    "sonde_web_config_last_reload_success_timestamp_seconds",
                    "Timestamp of the last successful load of the web config file",
                    registry=self.registry,
                ),
            )
        self._web_config[0].set(1 if ok else 0)
        if ok:
            self._web_config[1].set(now)
