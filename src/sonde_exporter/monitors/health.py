"""The monitor engine's own health on /metrics: monitors by state, checks in flight,
scheduling lag, and the database's writes, latency, size and availability."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import get_args

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..config.monitors import MonitorStatus
from .engine import MonitorEngine

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def lag_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "sonde_monitor_scheduling_lag_seconds",
        "Seconds from a check's due time to its start (waiting for a slot included)",
        buckets=LAG_BUCKETS,
        registry=registry,
    )


def commit_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "sonde_storage_commit_duration_seconds",
        "Seconds each database transaction took, from the writer's start to its commit",
        buckets=COMMIT_BUCKETS,
        registry=registry,
    )


class EngineCollector(Collector):
    def __init__(self, engine: MonitorEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        engine, store = self._engine, self._engine.store
        states = Counter(r.status for r in engine.records.values())
        by_state = GaugeMetricFamily("sonde_monitors", "Monitors by state", labels=("state",))
        for state in get_args(MonitorStatus):
            by_state.add_metric((state,), states[state])
        yield by_state
        yield GaugeMetricFamily(
            "sonde_monitors_not_runnable",
            "Monitors that cannot run with the config in force (their module is gone; see the log)",
            value=len(engine.plan_errors),
        )
        yield GaugeMetricFamily(
            "sonde_monitor_checks_in_flight",
            "Scheduled checks running or waiting for a slot (--monitors.max-concurrency)",
            value=engine.scheduler.stats.in_flight,
        )
        yield CounterMetricFamily(
            "sonde_monitor_skipped_ticks",
            "Ticks skipped because the monitor's previous check was still running",
            value=engine.scheduler.stats.skipped,
        )
        yield CounterMetricFamily(
            "sonde_monitor_results_dropped",
            "Check results that could not be stored because the database was unavailable",
            value=engine.dropped_results,
        )
        yield GaugeMetricFamily(
            "sonde_storage_available",
            "1 when the database is open and writable; 0 while it is not (the log says why)",
            value=1 if store.available else 0,
        )
        stats = store.stats
        yield CounterMetricFamily(
            "sonde_storage_writes", "Changes committed to the database", value=stats.writes
        )
        yield CounterMetricFamily(
            "sonde_storage_errors",
            "Times the database could not be opened or written",
            value=stats.write_errors,
        )
        yield GaugeMetricFamily(
            "sonde_storage_size_bytes",
            "Size of the database file and its write-ahead log",
            value=store.size_bytes(),
        )
