"""grafana/dashboard.json: structure, importability by Grafana 10 and 11, queries that parse.

The queries are run against a real Prometheus in test_prometheus_e2e.py.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from grafana_files import (
    ALL,
    DASHBOARD,
    GRAFANA,
    all_panels,
    check_promql,
    load_dashboard,
    panel_queries,
    parse_label_values,
    query_variables,
    substitute,
)

import sonde_exporter.probers.email.gauges as email_prober
import sonde_exporter.probers.icmp as icmp_prober
import sonde_exporter.probing.assertions as assertions
import sonde_exporter.probing.policies as policies
from sonde_exporter.probe_metrics import ProbeGauge
from sonde_exporter.probers.email.counters import COUNTERS as EMAIL_COUNTERS

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# Panel types built into both Grafana 10 and 11. Angular panels (graph, singlestat, table-old)
# were removed in Grafana 11 and must not appear.
BUILTIN_PANELS = {
    "row", "stat", "table", "timeseries", "bargauge", "gauge", "text", "state-timeline",
    "status-history", "barchart", "piechart", "heatmap",
}  # fmt: skip
VARIABLES = {"job", "module", "instance", "target"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_dashboard_json_is_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("dashboard_generator", GRAFANA / "dashboard.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert DASHBOARD.read_text() == generator.render(), "run: python grafana/dashboard.py"


def test_importable_with_a_datasource_input(dashboard):
    (source,) = dashboard["__inputs"]
    assert source["name"] == "DS_PROMETHEUS"
    assert source["type"] == "datasource" and source["pluginId"] == "prometheus"
    grafana = next(r for r in dashboard["__requires"] if r["type"] == "grafana")
    assert grafana["version"].startswith("10.")
    # 38 is what Grafana 10.0 writes; Grafana 11 migrates older schemas on load.
    assert 36 <= dashboard["schemaVersion"] <= 39
    assert dashboard["id"] is None  # an exported dashboard carries no database id
    assert dashboard["uid"] == "sonde-exporter"  # stable: links and alert rules use it
    assert len(dashboard["uid"]) <= 40


def test_panel_ids_are_unique(dashboard):
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_every_panel_has_the_datasource_and_a_query(dashboard):
    for panel in all_panels(dashboard):
        assert panel["type"] in BUILTIN_PANELS, f"{panel['title']}: {panel['type']}"
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
            if panel["type"] in {"table", "stat", "bargauge"}:  # current values, not history
                assert target["instant"] is True, panel["title"]
            if panel["type"] == "table":
                assert target["format"] == "table", panel["title"]


def test_panels_fit_the_grid_without_overlapping(dashboard):
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_template_variables(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert set(query_variables(dashboard)) >= VARIABLES
    for name in VARIABLES:
        var = variables[name]
        assert var["datasource"] == DATASOURCE
        assert var["multi"] and var["includeAll"] and var["allValue"] == ALL


@pytest.mark.prometheus
def test_variable_queries_parse(dashboard, tmp_path: Path):
    selectors: dict[str, str] = {}
    for name, query in query_variables(dashboard).items():
        selector, label = parse_label_values(query)
        assert label == name, f"{name} lists the values of {label}"
        if selector is not None:
            selectors[name] = substitute(selector, dict.fromkeys(VARIABLES, ALL))
    check_promql(selectors, tmp_path)


@pytest.mark.prometheus
def test_panel_queries_parse(dashboard, tmp_path: Path):
    values = dict.fromkeys(VARIABLES, ALL)
    check_promql({q.key: substitute(q.expr, values) for q in panel_queries(dashboard)}, tmp_path)


def test_probe_panels_filter_on_every_variable(dashboard):
    """A probe panel that ignored a variable would show other targets than the ones chosen."""
    for query in panel_queries(dashboard):
        if re.search(r"\bprobe_", query.expr):
            for name in VARIABLES:
                assert f"${name}" in query.expr, f"{query.key} ignores ${name}"
        else:  # the exporter's own metrics: filtered by the exporter instance
            assert "$instance" in query.expr, query.key


PROBER_METRICS = {
    # prober module: (its metrics on /metrics, how many metrics in all)
    icmp_prober: (
        {"sonde_icmp_socket_mode", "sonde_icmp_receive_drops", "sonde_icmp_unmatched_replies"},
        11,
    ),
    email_prober: ({counter.describe()[0].name for counter in EMAIL_COUNTERS}, 6),
    # The probe policies' gauges (README, "Probe policies"), whatever the prober.
    policies: (set(), 5),
    assertions: (set(), 1),
}


@pytest.mark.parametrize("prober", PROBER_METRICS, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_prober_metric_is_on_the_dashboard(dashboard, prober):
    """Each metric the ICMP and email probers and the probe policies export, and theirs on
    /metrics, has a panel."""
    on_metrics, count = PROBER_METRICS[prober]
    exported = {v.name for v in vars(prober).values() if isinstance(v, ProbeGauge)} | on_metrics
    shown = " ".join(q.expr for q in panel_queries(dashboard))
    assert len(exported) == count  # a new metric needs a panel, and this count raised
    assert {name for name in exported if not re.search(rf"\b{name}(_total)?\b", shown)} == set()


@pytest.mark.prometheus
def test_check_promql_rejects_bad_queries(tmp_path: Path):
    with pytest.raises(AssertionError, match="does not parse"):
        check_promql({"broken": "sum(rate(probe_success[5m])"}, tmp_path)
