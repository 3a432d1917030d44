"""The whole dashboard: its rows in order, the template variables every panel filters on, and
the import metadata Grafana 10 and 11 read.

Panel ids are grouped per row (row id + 1, 2, ...), so a prober's row slots in without
renumbering the others: 100 status, 200 latency, 300 failures, 400 TLS, 500 ICMP (loss, RTT,
jitter), 600 email (delivery time, phases, sent vs delivered, verdicts), 700 probe policies
(attempts, degraded, inverted checks, assertions), 900 the exporter's own health.
"""

from __future__ import annotations

import json

from .email import email_row
from .exporter import exporter_row
from .icmp import icmp_row
from .overview import failures_row, status_row
from .panels import DATASOURCE, Panel
from .policies import policies_row
from .tcp_tls import latency_row, tls_row

UID = "sonde-exporter"
TITLE = "sonde-exporter"
SCHEMA_VERSION = 38  # Grafana 10.0; Grafana 11 migrates it on load


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


ROWS = (
    status_row,
    latency_row,
    failures_row,
    policies_row,
    tls_row,
    icmp_row,
    email_row,
    exporter_row,
)


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
        "description": "Probe results, latency, TLS expiry, ICMP loss and jitter, email delivery, "
        "and exporter health for sonde-exporter",
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
