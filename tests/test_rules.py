"""The Prometheus alert rules and the Grafana-managed alerting file, checked with promtool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from grafana_files import (
    GRAFANA,
    RULE_FILES,
    RULE_TESTS,
    all_panels,
    check_promql,
    grafana_query,
    grafana_rules,
    grafana_threshold,
    load_dashboard,
    prometheus_alerts,
    run_promtool,
)

SEVERITIES = {"critical", "warning", "info"}
# Alerts about the exporter itself rather than one target.
EXPORTER_ALERTS = {
    "SondeExporterDown",
    "SondeExporterAbsent",
    "SondeConfigReloadFailed",
    "SondeIcmpPermissionMissing",
}
# Grafana-managed alerting: the same core alerts, for those who alert in Grafana.
CORE_ALERTS = {
    "SondeProbeFailing",
    "SondeProbeSlow",
    "SondeTcpConnectSlow",
    "SondeProbeFlapping",
    "SondeProbeDegraded",
    "SondeIcmpPacketLoss",
    "SondeCertificateExpiringSoon",
    "SondeConfigReloadFailed",
    "SondeExporterDown",
    "SondeEmailSendFailing",
    "SondeEmailNotDelivered",
}


# Under the classic blackbox_exporter relabeling a probe series has no target or module label
# and its instance is the target: outside a branch taken only when `target` is set, annotations
# name these with a fallback ({{ or $labels.target $labels.instance }}), never bare.
TARGET_SET_BRANCH = re.compile(r"\{\{ if \$labels\.target \}\}.*?\{\{ else \}\}", re.S)
BARE_LABEL = re.compile(r"\{\{\s*\$labels\.(target|module|instance)\b")


def assert_classic_safe(template: str) -> None:
    unguarded = TARGET_SET_BRANCH.sub("", template)
    assert not BARE_LABEL.search(unguarded), (
        f"a label that the classic relabeling leaves unset: {template}"
    )


def test_classic_safe_check_can_fail():
    with pytest.raises(AssertionError):
        assert_classic_safe("Probe of {{ $labels.target }}")
    assert_classic_safe("{{ if $labels.target }}{{ $labels.instance }}{{ else }}job{{ end }}")


@pytest.mark.prometheus
def test_rule_files_pass_promtool_check():
    assert RULE_FILES, "no grafana/rules/*.rules.yml"
    result = run_promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
@pytest.mark.prometheus
def test_promtool_unit_tests_pass(test_file: Path):
    result = run_promtool("test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(prometheus_alerts())
    assert alerts >= CORE_ALERTS | EXPORTER_ALERTS  # the sets below are not vacuously empty
    assert alerts - fires == set(), "alerts without a unit test that fires them"
    assert alerts - quiet == set(), "alerts without a unit test where they stay quiet"


@pytest.mark.prometheus
def test_the_unit_tests_can_fail(tmp_path: Path):
    """A wrong expectation is reported as a failure (the suite is not vacuous)."""
    source = next(p for p in RULE_TESTS if p.name == "tls.test.yml").read_text()
    broken = source.replace("expires in 7.0 days (threshold", "expires in 6.0 days (threshold")
    assert broken != source
    rules = [str(p) for p in RULE_FILES]
    data = yaml.safe_load(broken)
    data["rule_files"] = rules
    path = tmp_path / "broken.test.yml"
    path.write_text(yaml.safe_dump(data))
    result = run_promtool("test", "rules", path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(prometheus_alerts()))
def test_alert_has_severity_summary_and_description(name: str):
    rule = prometheus_alerts()[name]
    assert rule["labels"]["severity"] in SEVERITIES
    summary, description = rule["annotations"]["summary"], rule["annotations"]["description"]
    assert summary.strip() and description.strip()
    # Alerts about a probe name its target; the others are about the exporter itself.
    if name not in EXPORTER_ALERTS:
        assert "$labels.target" in summary and "$labels.target" in description
        assert_classic_safe(summary + description)
    # Every description gives the failure reason or says what causes the alert.
    assert re.search(r"[Ff]ailure reason|Reason:", description), description
    # Production rules wait before firing; the end-to-end test relies on the pending state.
    assert rule.get("for"), "alerts need a for: duration"


def test_probe_failing_description_looks_the_reason_up():
    rule = prometheus_alerts()["SondeProbeFailing"]
    assert "probe_failure_reason" in rule["annotations"]["description"]


def test_grafana_alerting_file_has_the_core_alerts():
    rules = grafana_rules()
    titles = [r["title"] for r in rules]
    assert len(titles) == len(set(titles))
    assert set(titles) >= CORE_ALERTS
    uids = [r["uid"] for r in rules]
    assert len(uids) == len(set(uids)) and all(len(u) <= 40 for u in uids)


@pytest.mark.parametrize("rule", grafana_rules(), ids=lambda r: r["title"])
def test_grafana_rule_mirrors_the_prometheus_alert(rule):
    prometheus = prometheus_alerts()[rule["title"]]
    assert rule["labels"]["severity"] == prometheus["labels"]["severity"]
    assert rule["for"] == prometheus["for"]
    refs = [d["refId"] for d in rule["data"]]
    assert refs == ["A", "B", "C"] and rule["condition"] == "C"
    query = rule["data"][0]
    assert query["datasourceUid"] == "${SONDE_PROMETHEUS_UID}"
    assert query["model"]["instant"] is True
    for expression in rule["data"][1:]:
        assert expression["datasourceUid"] == "__expr__"
    assert grafana_threshold(rule)[0] in {"lt", "gt"}
    annotations = rule["annotations"]
    assert "$labels.instance" in annotations["description"]
    if rule["title"] not in EXPORTER_ALERTS:
        assert "$labels.target" in annotations["summary"]
        assert_classic_safe(annotations["summary"] + annotations["description"])
    # Grafana interpolates environment variables in labels, so they must not hold a `$`.
    assert all("$" not in value for value in rule["labels"].values())
    assert rule["noDataState"] in {"OK", "NoData", "Alerting"}


def test_grafana_rules_link_to_existing_dashboard_panels():
    dashboard = load_dashboard()
    ids = {p["id"] for p in all_panels(dashboard)}
    for rule in grafana_rules():
        assert rule["annotations"]["__dashboardUid__"] == dashboard["uid"]
        assert int(rule["annotations"]["__panelId__"]) in ids, rule["title"]


@pytest.mark.prometheus
def test_grafana_rule_queries_parse(tmp_path: Path):
    check_promql({r["title"]: grafana_query(r) for r in grafana_rules()}, tmp_path)


def test_docs_list_every_alert():
    docs = (GRAFANA.parent / "docs" / "alerts.md").read_text()
    alerts = prometheus_alerts()
    assert alerts.keys() >= CORE_ALERTS
    missing = [name for name in alerts if f"`{name}`" not in docs]
    assert missing == []
