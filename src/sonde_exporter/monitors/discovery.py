"""GET /v1/sd: the monitors as Prometheus HTTP service discovery target groups.

Past one machine, Prometheus is the scheduler: each group makes a Prometheus with
`http_sd_configs` scrape this exporter's /probe for one monitor, at the monitor's interval,
with `monitor=ID` so that /probe checks it with the monitor's own settings (module, target,
timeout and, for an API monitor, its policies),
and `hashmod` on `monitor_id` splits the monitors between several Prometheus servers.
"""

from __future__ import annotations

from typing import Any

from .engine import MonitorEngine
from .plan import CheckPlan

TIMEOUT_OFFSET = 0.5
"""Added to the monitor's timeout for the scrape's: /probe subtracts --timeout-offset."""


def prometheus_duration(seconds: float) -> str:
    """Whole milliseconds, which every Prometheus version parses ("1500ms")."""
    return f"{max(1, round(seconds * 1000))}ms"


def target_group(plan: CheckPlan, exporter_address: str) -> dict[str, Any]:
    record = plan.record
    scrape_timeout = min(plan.timeout + TIMEOUT_OFFSET, record.interval)
    labels = {
        "__metrics_path__": "/probe",
        "__param_module": record.module,
        "__param_target": record.target,
        "__param_monitor": record.id,
        "__scrape_interval__": prometheus_duration(record.interval),
        "__scrape_timeout__": prometheus_duration(scrape_timeout),
        **dict(plan.series_labels),
    }
    return {"targets": [exporter_address], "labels": labels}


def target_groups(engine: MonitorEngine, exporter_address: str) -> list[dict[str, Any]]:
    """One group per checked monitor (active or maintenance), in a stable order."""
    return [
        target_group(plan, exporter_address)
        for _, plan in sorted(engine.plans.items())
        if plan.scheduled
    ]
