"""The shipped Prometheus and Grafana files, and what the tests need to check them.

promtool and prometheus come from the Debian `prometheus` package, which `make test` installs
(.ci/install-system-deps); a test that needs them fails, never skips, when they are missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARD = GRAFANA / "dashboard.json"
SCRAPE_CONFIG = GRAFANA / "prometheus.yml"
RULE_FILES = sorted((GRAFANA / "rules").glob("*.rules.yml"))
RULE_TESTS = sorted((GRAFANA / "rules" / "tests").glob("*.test.yml"))
GRAFANA_ALERTING = GRAFANA / "provisioning" / "alerting" / "sonde-exporter.yml"

# Grafana's own variables, as the test substitutes them (a 1s scrape interval makes 1m plenty).
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
ALL = ".*"  # the allValue of every multi-value variable


def tool(name: str) -> str:
    """Path of a Debian `prometheus` package binary; fails loudly when it is not installed."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    assert path, f"{name} is missing: install the Debian package `prometheus` (make test does)"
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def check_promql(exprs: dict[str, str], workdir: Path) -> None:
    """Fail unless every expression parses as PromQL (promtool parses recording rules)."""
    names = {f"check:q{i}": (key, expr) for i, (key, expr) in enumerate(exprs.items())}
    rules = [{"record": name, "expr": expr} for name, (_, expr) in names.items()]
    path = workdir / "promql-check.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
    result = run_promtool("check", "rules", path)
    if result.returncode != 0:
        bad = [
            f"{key}: {expr}"
            for name, (key, expr) in names.items()
            if name in result.stdout + result.stderr
        ]
        raise AssertionError(
            f"PromQL that does not parse:\n{textwrap.indent(result.stdout + result.stderr, '  ')}"
            f"\nexpressions: {bad}"
        )


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int
    title: str
    ref: str
    expr: str
    instant: bool
    legend: str  # Grafana's legendFormat: "{{label}}" templates, or "__auto"
    panel_type: str

    @property
    def key(self) -> str:
        return f"{self.title} [{self.ref}]"


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(
            p["id"],
            p["title"],
            t["refId"],
            t["expr"],
            bool(t.get("instant")),
            t.get("legendFormat", "__auto"),
            p["type"],
        )
        for p in all_panels(dashboard)
        if p["type"] != "row"
        for t in p.get("targets", [])
    ]


def query_variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """name -> query of every `query` template variable."""
    out: dict[str, str] = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            out[var["name"]] = query["query"] if isinstance(query, dict) else query
    return out


# A variable name starts with a letter: `$1` is a capture group of label_replace, left as is.
_VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana variables ($name, ${name}) as Grafana would; unknown ones fail."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in values:
            return values[name]
        if name in BUILTINS:
            return BUILTINS[name]
        raise AssertionError(f"unknown variable ${name} in {expr!r}")

    return _VAR.sub(value, expr)


_LABEL_VALUES = re.compile(
    r"^label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>[a-zA-Z_]\w*)\s*\)$"
)


def parse_label_values(query: str) -> tuple[str | None, str]:
    """`label_values(selector, label)` or `label_values(label)` -> (selector, label)."""
    match = _LABEL_VALUES.match(query.strip())
    assert match, f"variable query is not label_values(...): {query!r}"
    return match.group("selector"), match.group("label")


def scrape_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SCRAPE_CONFIG.read_text())
    return data


def grafana_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(GRAFANA_ALERTING.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def prometheus_alerts() -> dict[str, dict[str, Any]]:
    """alertname -> rule, over every shipped rule file."""
    out: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = rule
    return out


def grafana_query(rule: dict[str, Any]) -> str:
    """The PromQL of a Grafana rule's query A."""
    (query,) = [d for d in rule["data"] if d["refId"] == "A"]
    expr: str = query["model"]["expr"]
    return expr


def grafana_threshold(rule: dict[str, Any]) -> tuple[str, float]:
    """The condition's evaluator: ("lt" | "gt", value)."""
    (condition,) = [d for d in rule["data"] if d["refId"] == rule["condition"]]
    model = condition["model"]
    assert model["type"] == "threshold", rule["title"]
    (evaluator,) = [c["evaluator"] for c in model["conditions"]]
    return evaluator["type"], float(evaluator["params"][0])


def crosses(op: str, value: float, threshold: float) -> bool:
    if op == "lt":
        return value < threshold
    if op == "gt":
        return value > threshold
    raise AssertionError(f"unexpected evaluator {op}")
