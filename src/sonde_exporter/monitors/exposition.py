"""/monitors/metrics: every monitor's last check as the `probe_*` series /probe returns,
labelled with the monitor, plus its counters and state.

The shipped dashboard and alert rules read these series as they are; a scrape job with
`honor_labels: true` keeps the monitor's labels (grafana/prometheus.yml).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from ..config.monitors import MonitorStatus
from ..probe_metrics import (
    PROBE_FAILURE_REASON,
    PROBE_SUCCESS,
    ProbeMetrics,
    escape_label,
    format_value,
)
from ..storage import ResultRecord
from ..storage.records import CheckStatus
from .engine import MonitorEngine, MonitorState
from .plan import CheckPlan
from .samples import Samples, freeze, thaw

STATES: tuple[str, ...] = get_args(MonitorStatus)
CHECK_STATUSES: tuple[str, ...] = get_args(CheckStatus)


class _Family:
    __slots__ = ("header", "lines")

    def __init__(self, header: str) -> None:
        self.header = header
        self.lines: list[str] = []


def _family(help_text: str, name: str, kind: str) -> tuple[str, _Family]:
    return name, _Family(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")


def render(engine: MonitorEngine) -> str:
    """The exposition of every monitor, families in a fixed order, samples grouped."""
    probe: dict[str, _Family] = {}
    own = dict(
        (
            _family(
                "1 for the monitor's state (active, maintenance, disabled)",
                "sonde_monitor_state",
                "gauge",
            ),
            _family(
                "Checks run since the exporter started, by status",
                "sonde_monitor_checks_total",
                "counter",
            ),
            _family(
                "Attempts made by the checks, retries included",
                "sonde_monitor_attempts_total",
                "counter",
            ),
            _family(
                "Ticks skipped because the previous check was still running",
                "sonde_monitor_skipped_ticks_total",
                "counter",
            ),
            _family(
                "When the last check started, in seconds since the epoch",
                "sonde_monitor_last_check_timestamp_seconds",
                "gauge",
            ),
        )
    )
    for monitor_id, plan in engine.plans.items():
        labels = _labels(plan.series_labels)
        state = plan.record.status
        own["sonde_monitor_state"].lines.append(
            f'sonde_monitor_state{{{labels},state="{state}"}} 1\n'
        )
        if not plan.scheduled:
            continue
        monitor = engine.states.get(monitor_id)
        slot = engine.scheduler.slot(monitor_id)
        skipped = slot.skipped if slot is not None else 0
        own["sonde_monitor_skipped_ticks_total"].lines.append(
            f"sonde_monitor_skipped_ticks_total{{{labels}}} {skipped}\n"
        )
        if monitor is None or monitor.last is None:
            continue
        _own_counters(own, labels, monitor)
        _probe_series(probe, plan, labels, monitor.metrics or _from_result(monitor.last))
    out: list[str] = []
    for family in (*probe.values(), *own.values()):
        if family.lines:
            out.append(family.header)
            out.extend(family.lines)
    return "".join(out)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs)


def _own_counters(own: dict[str, _Family], labels: str, monitor: MonitorState) -> None:
    for status in CHECK_STATUSES:
        own["sonde_monitor_checks_total"].lines.append(
            f'sonde_monitor_checks_total{{{labels},status="{status}"}} {monitor.checks[status]}\n'
        )
    own["sonde_monitor_attempts_total"].lines.append(
        f"sonde_monitor_attempts_total{{{labels}}} {monitor.attempts}\n"
    )
    assert monitor.last is not None
    own["sonde_monitor_last_check_timestamp_seconds"].lines.append(
        f"sonde_monitor_last_check_timestamp_seconds{{{labels}}} "
        f"{format_value(monitor.last.checked_at)}\n"
    )


def _probe_series(
    probe: dict[str, _Family], plan: CheckPlan, labels: str, samples_set: Samples
) -> None:
    """Most families have no labels of their own: one sample, written straight; the others
    get the monitor's labels, less any a family sets itself (a probe's `target`, say)."""
    names: frozenset[str] | None = None
    for gauge, samples in thaw(samples_set):
        family = probe.get(gauge.name)
        if family is None:
            family = probe[gauge.name] = _Family(gauge.header)
        if not gauge.labels:
            for _, value in samples:
                family.lines.append(f"{gauge.name}{{{labels}}} {format_value(value)}\n")
            continue
        if names is None:
            names = frozenset(name for name, _ in plan.series_labels)
        prefix = labels
        if not names.isdisjoint(gauge.labels):
            prefix = _labels(p for p in plan.series_labels if p[0] not in gauge.labels)
        for values, value in samples:
            own = ",".join(
                f'{name}="{escape_label(v)}"' for name, v in zip(gauge.labels, values, strict=True)
            )
            family.lines.append(f"{gauge.name}{{{prefix},{own}}} {format_value(value)}\n")


def _from_result(result: ResultRecord) -> Samples:
    """After a restart, until the next check: what the stored result says."""
    metrics = ProbeMetrics()
    if result.reason is not None:
        metrics.set(PROBE_FAILURE_REASON, 1, result.reason)
    metrics.set(PROBE_SUCCESS, 1 if result.status == "up" else 0)
    return freeze(metrics)
