"""Writes grafana/dashboard.json, the sonde-exporter dashboard for Grafana 10 and 11.

The JSON is generated so that every panel filters on the same template variables and every
panel id stays stable (alert rules link to them). Run `python grafana/dashboard.py` after an
edit; tests/test_dashboard.py fails while dashboard.json differs from what this writes.

Layout: one row per concern, each row a function returning its panels. Panel ids are grouped
per row (row id + 1, 2, ...), so a prober's row slots in without renumbering the others:
  100 status, 200 latency, 300 failures, 400 TLS,
  500 ICMP (loss, jitter, RTT) and 600 email (delivery time, phases) once those probers exist,
  900 the exporter's own health.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Panel = dict[str, Any]

UID = "sonde-exporter"
TITLE = "sonde-exporter"
SCHEMA_VERSION = 38  # Grafana 10.0; Grafana 11 migrates it on load
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
OUTPUT = Path(__file__).with_name("dashboard.json")

# The selector every probe metric gets: the four template variables.
PROBE = 'job=~"$job", module=~"$module", instance=~"$instance", target=~"$target"'
# The exporter's own metrics (job sonde-exporter): `instance` is the same exporter address.
EXPORTER = 'instance=~"$instance"'
# Only the process metrics of sonde-exporter, whatever job scrapes them.
IS_SONDE = "and on(job, instance) sonde_exporter_build_info"


def target(expr: str, ref: str = "A", legend: str = "", *, instant: bool = False) -> Panel:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "format": "time_series",  # panel() makes it "table" for table panels
        "instant": instant,
        "range": not instant,
        "legendFormat": legend or "__auto",
        "refId": ref,
    }


def panel(
    pid: int,
    kind: str,
    title: str,
    targets: list[Panel],
    grid: tuple[int, int, int, int],
    *,
    description: str,
    unit: str = "short",
    defaults: Panel | None = None,
    overrides: list[Panel] | None = None,
    options: Panel | None = None,
    transformations: list[Panel] | None = None,
) -> Panel:
    x, y, w, h = grid
    if kind == "table":  # one row per series, labels as columns
        targets = [{**t, "format": "table"} for t in targets]
    field_defaults: Panel = {"unit": unit}
    field_defaults.update(defaults or {})
    out: Panel = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        out["transformations"] = transformations
    return out


def row(pid: int, title: str, y: int) -> Panel:
    return {
        "id": pid,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        "panels": [],
    }


def timeseries_options(*, stacked: bool = False, bars: bool = False) -> tuple[Panel, Panel]:
    custom: Panel = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else (30 if stacked else 0),
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stacked or bars else "none", "group": "A"},
    }
    options: Panel = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return {"custom": custom}, options


def thresholds(*steps: tuple[str, float | None]) -> Panel:
    return {
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for color, value in steps],
        }
    }


def hide_columns(*names: str, rename: dict[str, str] | None = None) -> Panel:
    return {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(names, True),
            "renameByName": rename or {},
        },
    }


def status_row(y: int) -> list[Panel]:
    up_down = {
        "type": "value",
        "options": {
            "1": {"text": "UP", "color": "green", "index": 0},
            "0": {"text": "DOWN", "color": "red", "index": 1},
        },
    }
    return [
        row(100, "Status", y),
        panel(
            101,
            "stat",
            "Targets up",
            [target(f"count(probe_success{{{PROBE}}} == 1) or vector(0)", instant=True)],
            (0, y + 1, 4, 4),
            description="Targets whose latest probe succeeded.",
            defaults=thresholds(("green", None)),
            options={"colorMode": "background", "graphMode": "none", "textMode": "value"},
        ),
        panel(
            102,
            "stat",
            "Targets down",
            [target(f"count(probe_success{{{PROBE}}} == 0) or vector(0)", instant=True)],
            (0, y + 5, 4, 4),
            description="Targets whose latest probe failed; the table says why.",
            defaults=thresholds(("green", None), ("red", 1)),
            options={"colorMode": "background", "graphMode": "none", "textMode": "value"},
        ),
        panel(
            103,
            "table",
            "Status per target",
            [
                # Failing probes carry their reason label; `or on(...)` adds the others.
                target(
                    f"(probe_success{{{PROBE}}} * on(job, instance, module, target) "
                    f"group_left(reason) probe_failure_reason{{{PROBE}}}) "
                    f"or on(job, instance, module, target) probe_success{{{PROBE}}}",
                    instant=True,
                )
            ],
            (4, y + 1, 14, 8),
            description="Latest result of every probe and, when it failed, the failure reason "
            "(the documented fixed set: connect_refused, connect_timeout, tls_verify, ...). "
            "instance is the exporter that ran the probe.",
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Value"},
                    "properties": [
                        {"id": "displayName", "value": "Status"},
                        {"id": "mappings", "value": [up_down]},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    ],
                }
            ],
            options={"showHeader": True, "sortBy": [{"displayName": "Status", "desc": False}]},
            transformations=[hide_columns("Time", "__name__")],
        ),
        panel(
            104,
            "table",
            "Probe scrapes failing",
            [target(f'up{{{PROBE}, module!=""}} == 0', instant=True)],
            (18, y + 1, 6, 8),
            description="Probe jobs Prometheus could not scrape: no result at all, so these "
            "targets are missing from the status table. Usually the exporter is down or the "
            "job's scrape_timeout is shorter than the module's timeout. Empty when all is well.",
            transformations=[hide_columns("Time", "__name__", "Value")],
        ),
        panel(
            105,
            "bargauge",
            "Availability over the time range",
            [
                target(
                    f"avg by (target, module) (avg_over_time(probe_success{{{PROBE}}}[$__range]))",
                    legend="{{target}} ({{module}})",
                    instant=True,
                )
            ],
            (0, y + 9, 24, 6),
            description="Share of successful probes per target over the dashboard's time range.",
            unit="percentunit",
            defaults={
                "min": 0,
                "max": 1,
                **thresholds(("red", None), ("orange", 0.95), ("green", 0.999)),
            },
            options={"displayMode": "basic", "orientation": "horizontal", "showUnfilled": True},
        ),
    ]


def latency_row(y: int) -> list[Panel]:
    stacked, stacked_options = timeseries_options(stacked=True)
    lines, line_options = timeseries_options()
    return [
        row(200, "Latency", y),
        panel(
            201,
            "timeseries",
            "TCP latency by phase",
            [target(f"probe_tcp_duration_seconds{{{PROBE}}}", legend="{{target}} {{phase}}")],
            (0, y + 1, 12, 8),
            description="Time spent in each phase of the TCP probe (resolve, connect, tls, "
            "query), stacked: the top of each stack is the whole probe.",
            unit="s",
            defaults=stacked,
            options=stacked_options,
        ),
        panel(
            202,
            "timeseries",
            "TCP handshake round trip (kernel)",
            [target(f"probe_tcp_rtt_seconds{{{PROBE}}}", legend="{{target}}")],
            (12, y + 1, 12, 8),
            description="The kernel's own round-trip measure of the TCP handshake (TCP_INFO); "
            "unaffected by the exporter's load.",
            unit="s",
            defaults=lines,
            options=line_options,
        ),
        panel(
            203,
            "timeseries",
            "Probe duration against timeout",
            [
                target(f"probe_duration_seconds{{{PROBE}}}", legend="{{target}} ({{module}})"),
                target(
                    f"max by (module) (probe_timeout_seconds{{{PROBE}}})",
                    ref="B",
                    legend="timeout {{module}}",
                ),
            ],
            (0, y + 9, 24, 8),
            description="How long each probe took, and the timeout it ran under (dashed): "
            "the module's timeout capped by the scrape timeout minus --timeout-offset. A probe "
            "that reaches its timeout fails.",
            unit="s",
            defaults=lines,
            overrides=[
                {
                    "matcher": {"id": "byFrameRefID", "options": "B"},
                    "properties": [
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                    ],
                }
            ],
            options=line_options,
        ),
    ]


def failures_row(y: int) -> list[Panel]:
    bars, bar_options = timeseries_options(bars=True)
    return [
        row(300, "Failures", y),
        panel(
            301,
            "timeseries",
            "Failure reasons over time",
            [
                target(
                    f"count by (reason) (probe_failure_reason{{{PROBE}}} == 1)",
                    legend="{{reason}}",
                )
            ],
            (0, y + 1, 24, 8),
            description="How many targets fail, by failure reason.",
            defaults=bars,
            options=bar_options,
        ),
    ]


def tls_row(y: int) -> list[Panel]:
    return [
        row(400, "TLS", y),
        panel(
            401,
            "table",
            "TLS certificate days left",
            [
                target(
                    f"(probe_ssl_earliest_cert_expiry{{{PROBE}}} - time()) / 86400",
                    instant=True,
                )
            ],
            (0, y + 1, 16, 8),
            description="Days until the first certificate the target sent expires. The alert "
            "SondeCertificateExpiringSoon fires below 14.",
            unit="none",
            defaults=thresholds(("red", None), ("orange", 7), ("green", 14)),
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Value"},
                    "properties": [
                        {"id": "displayName", "value": "Days left"},
                        {"id": "decimals", "value": 1},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    ],
                }
            ],
            options={"showHeader": True, "sortBy": [{"displayName": "Days left", "desc": False}]},
            transformations=[hide_columns("Time")],
        ),
        panel(
            402,
            "table",
            "TLS version",
            [target(f"probe_tls_version_info{{{PROBE}}} == 1", instant=True)],
            (16, y + 1, 8, 8),
            description="TLS version negotiated by the latest probe of each target.",
            transformations=[hide_columns("Time", "__name__", "Value", "job", "instance")],
        ),
    ]


def exporter_row(y: int) -> list[Panel]:
    lines, line_options = timeseries_options()
    stacked, stacked_options = timeseries_options(stacked=True)
    return [
        row(900, "Exporter health", y),
        panel(
            901,
            "timeseries",
            "Probes per second by module and result",
            [
                target(
                    "sum by (module, result) (rate(sonde_probes_total"
                    f'{{{EXPORTER}, module=~"$module"}}[$__rate_interval]))',
                    legend="{{module}} {{result}}",
                ),
                target(
                    f"sum(rate(sonde_module_unknown_total{{{EXPORTER}}}[$__rate_interval]))",
                    ref="B",
                    legend="unknown module (HTTP 400)",
                ),
            ],
            (0, y + 1, 12, 8),
            description="Probes the exporter ran, whoever asked for them.",
            unit="reqps",
            defaults=stacked,
            options=stacked_options,
        ),
        panel(
            902,
            "timeseries",
            "Probes in flight",
            [target(f"sonde_probes_in_flight{{{EXPORTER}}}", legend="{{instance}}")],
            (12, y + 1, 6, 8),
            description="Probes running at scrape time.",
            defaults=lines,
            options=line_options,
        ),
        panel(
            903,
            "stat",
            "Last config reload",
            [
                target(
                    f"sonde_config_last_reload_successful{{{EXPORTER}}}",
                    legend="{{instance}}",
                    instant=True,
                ),
            ],
            (18, y + 1, 6, 4),
            description="Whether the last reload (SIGHUP or POST /-/reload) succeeded. After "
            "a failed one the exporter keeps the previous config.",
            defaults={
                "mappings": [
                    {
                        "type": "value",
                        "options": {
                            "1": {"text": "OK", "color": "green", "index": 0},
                            "0": {"text": "FAILED", "color": "red", "index": 1},
                        },
                    }
                ]
            },
            options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
        ),
        panel(
            904,
            "stat",
            "Config loaded",
            [
                target(
                    f"sonde_config_last_reload_success_timestamp_seconds{{{EXPORTER}}} * 1000",
                    legend="{{instance}}",
                    instant=True,
                ),
            ],
            (18, y + 5, 6, 4),
            description="When the configuration in force was loaded.",
            unit="dateTimeFromNow",
            options={"colorMode": "none", "graphMode": "none", "textMode": "value_and_name"},
        ),
        panel(
            905,
            "timeseries",
            "Probe duration quantiles (exporter side)",
            [
                target(
                    f"histogram_quantile({q}, sum by (le, module) (rate("
                    f'sonde_probe_duration_seconds_bucket{{{EXPORTER}, module=~"$module"}}'
                    "[$__rate_interval])))",
                    ref=ref,
                    legend=f"p{round(q * 100)} {{{{module}}}}",
                )
                for q, ref in ((0.5, "A"), (0.99, "B"))
            ],
            (0, y + 9, 8, 8),
            description="Wall time of the probes the exporter ran, from its own histogram.",
            unit="s",
            defaults=lines,
            options=line_options,
        ),
        panel(
            906,
            "timeseries",
            "CPU",
            [
                target(
                    f"rate(process_cpu_seconds_total{{{EXPORTER}}}[$__rate_interval]) {IS_SONDE}",
                    legend="{{instance}}",
                )
            ],
            (8, y + 9, 8, 8),
            description="CPU used by the exporter process (1 = one core).",
            unit="percentunit",
            defaults=lines,
            options=line_options,
        ),
        panel(
            907,
            "timeseries",
            "Memory",
            [
                target(
                    f"process_resident_memory_bytes{{{EXPORTER}}} {IS_SONDE}",
                    legend="{{instance}}",
                )
            ],
            (16, y + 9, 8, 8),
            description="Resident memory of the exporter process.",
            unit="bytes",
            defaults=lines,
            options=line_options,
        ),
    ]


def variable(name: str, label: str, query: str) -> Panel:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "regex": "",
    }


def templating() -> list[Panel]:
    return [
        {
            # Named like the import input, so a dashboard provisioned from a file (where no
            # input is asked for) resolves ${DS_PROMETHEUS} to the default Prometheus.
            "name": "DS_PROMETHEUS",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        variable("job", "Job", "label_values(probe_success, job)"),
        variable("module", "Module", 'label_values(probe_success{job=~"$job"}, module)'),
        variable(
            "instance",
            "Exporter",
            'label_values(probe_success{job=~"$job", module=~"$module"}, instance)',
        ),
        variable(
            "target",
            "Target",
            'label_values(probe_success{job=~"$job", module=~"$module", instance=~"$instance"}, '
            "target)",
        ),
    ]


ROWS = (status_row, latency_row, failures_row, tls_row, exporter_row)


def panels() -> list[Panel]:
    out: list[Panel] = []
    y = 0
    for make_row in ROWS:
        row_panels = make_row(y)
        out += row_panels
        y = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in row_panels)
    return out


def dashboard() -> Panel:
    kinds = sorted({p["type"] for p in panels() if p["type"] != "row"})
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes sonde-exporter",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__elements": {},
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": kind, "name": kind, "version": ""} for kind in kinds),
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Probe results, latency, TLS expiry and exporter health for sonde-exporter",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "liveNow": False,
        "panels": panels(),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["sonde-exporter", "blackbox", "prometheus"],
        "templating": {"list": templating()},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT}\n")
