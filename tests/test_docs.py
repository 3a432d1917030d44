"""The README and docs/ kept in step with the code, in both directions: every flag, metric,
failure reason, config key, API field and alert the code has is documented, and every one the
docs name exists; every relative link resolves; the README's Layout names every package and
module under src/sonde_exporter and nothing else. Everything is derived from the code (the
argparse parsers, the metric declarations, the pydantic models, the OpenAPI document, the rule
files), never listed here by hand."""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

import sonde_exporter
from sonde_exporter import api_keys_cli, cli
from sonde_exporter.api.openapi import document
from sonde_exporter.config import Config
from sonde_exporter.probe_metrics import ProbeGauge
from sonde_exporter.prober_base import Reason
from sonde_exporter.selfmetrics import SelfMetrics

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PACKAGE = Path(sonde_exporter.__file__).resolve().parent
PAGES = [README, *sorted(DOCS.glob("*.md"))]

README_MAX_LINES = 260
"""The front page fits in a few screens; the reference lives in docs/."""


# --- reading the pages ---------------------------------------------------------------------


def _text(name: str) -> str:
    return (DOCS / name).read_text()


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _spans(text: str) -> list[str]:
    """Every `code span` outside fenced blocks."""
    return re.findall(r"`([^`\n]+)`", _without_code_blocks(text))


def _words(text: str) -> set[str]:
    """Every name a page mentions as code: whole spans and their identifier parts, and the keys
    of its YAML examples."""
    out: set[str] = set()
    for span in _spans(text):
        out.add(span)
        out.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    for block in re.findall(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M):
        out.update(re.findall(r"^\s*(?:-\s+)?([A-Za-z_][A-Za-z0-9_]*):", block, flags=re.M))
    return out


def _tables(text: str) -> Iterator[tuple[str, list[str]]]:
    """Each table: its first header cell, and the first cell of each of its rows."""
    lines = _without_code_blocks(text).splitlines()
    for i, line in enumerate(lines):
        if not (line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---")):
            continue
        if i > 0 and lines[i - 1].startswith("|"):
            continue
        header = line.split("|")[1].strip()
        rows = []
        for row in lines[i + 2 :]:
            if not row.startswith("|"):
                break
            rows.append(row.split("|")[1].strip())
        yield header, rows


def _first_cells(text: str, *headers: str) -> list[str]:
    return [cell for header, rows in _tables(text) if header in headers for cell in rows]


def _section(text: str, heading: str) -> str:
    """From a heading line to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2 :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest if end is None else rest[: end.start()]


# --- flags ---------------------------------------------------------------------------------


class _Parser(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _parser(
    monkeypatch: pytest.MonkeyPatch, parse: typing.Callable[..., Any], *argv: str
) -> argparse.ArgumentParser:
    """The parser a parse_args function builds, caught as it starts parsing."""

    def catch(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Parser(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(_Parser) as caught:
        parse(list(argv))
    return caught.value.parser


def _options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                yield option, action
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield command, action
                yield from _options(sub)


def _documented_flags(cells: list[str]) -> set[str]:
    return {
        token
        for cell in cells
        for span in re.findall(r"`([^`]+)`", cell)
        for token in re.findall(r"(?:^|\s)(--[a-z][a-z0-9.-]*|[a-z]+)(?=\s|$)", span)
    }


def test_every_flag_is_documented_and_every_documented_flag_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = _text("flags.md")
    exporter = dict(_options(_parser(monkeypatch, cli.parse_args)))
    api_key = dict(_options(_parser(monkeypatch, api_keys_cli.parse_args, "list")))
    # BooleanOptionalAction's --no-x is named in the meaning of --x, not in a row of its own.
    negated = {o for o, a in exporter.items() if isinstance(a, argparse.BooleanOptionalAction)}
    negated = {o for o in negated if o.startswith("--no-")}
    for option in negated:
        assert f"`{option}`" in page, option
    sections = {
        "exporter": (set(exporter) - negated, _section(page, "## The exporter")),
        "api-key": (set(api_key), _section(page, "## `sonde-exporter api-key`")),
    }
    for name, (code, text) in sections.items():
        documented = _documented_flags(_first_cells(text, "flag", "command and flag"))
        assert code - documented == set(), f"{name}: flags without a row in docs/flags.md"
        assert documented - code == set(), f"{name}: docs/flags.md rows for no flag"


# --- metrics -------------------------------------------------------------------------------

_METRIC = re.compile(r"(?:probe|sonde)_[a-z0-9_]+")
_COUNTERS = {"Counter", "CounterMetricFamily"}
_INFOS = {"Info", "InfoMetricFamily"}
_DECLARATIONS = {"ProbeGauge", "Gauge", "Histogram", "Summary", "Enum"} | _COUNTERS | _INFOS


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def code_metrics() -> set[str]:
    """Every metric family the package declares, by its exposed name: the calls that declare
    one (prometheus_client's classes and metric families, ProbeGauge, and helpers named
    *family), with the name given as a string literal."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            callee = _callee(node)
            if callee not in _DECLARATIONS and not callee.lower().endswith("family"):
                continue
            for arg in node.args:
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    continue
                if not _METRIC.fullmatch(name := arg.value):
                    continue
                if callee in _COUNTERS and not name.endswith("_total"):
                    name += "_total"
                if callee in _INFOS:
                    name += "_info"
                names.add(name)
    return names


def _all_modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages([str(PACKAGE)], "sonde_exporter."):
        if not info.name.endswith("__main__"):
            yield importlib.import_module(info.name)


def test_the_metric_scan_sees_what_the_code_builds() -> None:
    """The scan above against the objects themselves: every ProbeGauge a module holds and every
    family of a fresh exporter's own registry (the web config's gauges included)."""
    scanned = code_metrics()
    gauges = {
        value.name
        for module in _all_modules()
        for value in vars(module).values()
        if isinstance(value, ProbeGauge)
    }
    assert gauges and gauges <= scanned
    metrics = SelfMetrics()
    metrics.web_config_loaded(True, 0.0)
    families = {
        sample.name.removesuffix("_created")
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.startswith(("process_", "python_"))
    }
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in families}
    assert families and families <= scanned, families - scanned


def _documented_metrics() -> set[str]:
    page = _text("metrics.md")
    return {
        name
        for cell in _first_cells(page, "metric", "series")
        for span in re.findall(r"`([^`]+)`", cell)
        if "*" not in span
        for name in [span.split("{", 1)[0]]
        if _METRIC.fullmatch(name)
    }


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    code, documented = code_metrics(), _documented_metrics()
    assert code - documented == set(), "metrics without a row in docs/metrics.md"
    assert documented - code == set(), "docs/metrics.md rows for metrics the code lacks"


def test_every_failure_reason_is_documented() -> None:
    table = _section(_text("metrics.md"), "### Failure reasons")
    documented = {cell.strip("`") for cell in _first_cells(table, "reason")}
    assert documented == {reason.value for reason in Reason}


# --- config keys ---------------------------------------------------------------------------


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def config_keys() -> set[str]:
    """Every YAML key of the config file: Config's fields, recursively, by alias."""
    keys: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            keys.add(field.alias or name)
            for sub in _models(field.annotation):
                walk(sub)

    walk(Config)
    return keys


def test_every_config_key_is_documented_and_every_documented_key_exists() -> None:
    page = _text("configuration.md")
    keys = config_keys()
    assert {"modules", "monitors", "ip_filter", "query_response", "stale_after"} <= keys
    missing = keys - _words(page)
    assert missing == set(), "config keys docs/configuration.md does not name"
    documented = {
        part
        for cell in _first_cells(page, "key", "option")
        for span in re.findall(r"`([^`]+)`", cell)
        for part in re.findall(r"[a-z_]+", span)
    }
    assert documented - keys == set(), "docs/configuration.md rows for keys the config lacks"


# --- the management API --------------------------------------------------------------------


def _properties(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield from node["properties"]
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value)


def test_every_api_field_is_documented_and_every_documented_field_exists() -> None:
    page = _text("api.md")
    openapi = document()
    fields = set(_properties(openapi))
    operations = [
        op for ops in openapi["paths"].values() for op in ops.values() if isinstance(op, dict)
    ]
    parameters = {p["name"] for op in operations for p in op.get("parameters", ())}
    scopes = {op["x-scope"] for op in operations if "x-scope" in op}
    assert {"name", "timeoutMs", "receiveUrl", "packetLoss"} <= fields and scopes
    words = _words(page)
    assert (fields | parameters | scopes) - words == set(), "missing from docs/api.md"
    documented = {
        part
        for cell in _first_cells(page, "field")
        for span in re.findall(r"`([^`]+)`", cell)
        for part in re.findall(r"[A-Za-z]+", span)
    }
    assert documented - fields == set(), "docs/api.md rows for fields the API lacks"


# --- alerts --------------------------------------------------------------------------------


def test_every_alert_is_documented_and_every_documented_alert_exists() -> None:
    alerts = {
        rule["alert"]
        for path in sorted((ROOT / "grafana" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    documented = {cell.strip("`") for cell in _first_cells(_text("alerts.md"), "alert")}
    assert alerts and alerts == documented


# --- links ---------------------------------------------------------------------------------


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", _without_code_blocks(path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in out:
            n += 1
            candidate = f"{slug}-{n}"
        out.add(candidate)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _without_code_blocks(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        missing = not path.exists()
        if missing or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(target)
    assert broken == []


# --- the README ----------------------------------------------------------------------------


LAYOUT_PURPOSE_COLUMN = 28
"""In the Layout, a line indented this far continues the purpose of the entry above it."""


def _layout() -> dict[str, str]:
    """The Layout block as path -> purpose: an entry per line, nested by two spaces."""
    block = _section(README.read_text(), "## Layout").split("```\n", 2)[1]
    lines = block.splitlines()
    assert lines[0].split()[0] == "src/sonde_exporter/"
    listed: dict[str, str] = {}
    stack: list[str] = []
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip(" "))
        if indent >= LAYOUT_PURPOSE_COLUMN:
            listed["".join(stack)] += " " + line.strip()
            continue
        name, _, purpose = line.strip().partition(" ")
        stack[indent // 2 - 1 :] = [name]
        listed["".join(stack)] = purpose.strip()
    return listed


def test_the_layout_names_every_package_and_module() -> None:
    listed = _layout()
    actual = {
        str(path.relative_to(PACKAGE)) + ("/" if path.is_dir() else "")
        for path in PACKAGE.rglob("*")
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.name != "__init__.py")
    }
    assert actual - listed.keys() == set(), "add these to the README's Layout"
    assert listed.keys() - actual == set(), "the README's Layout names what does not exist"
    assert [path for path, purpose in listed.items() if not purpose] == []


def test_the_readme_fits_in_a_few_screens() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES
    # The set-up is exactly two commands; CI runs the second (.ci/run).
    assert "    make run" in lines and "    make test" in lines
    assert "make test" in (ROOT / ".ci" / "run").read_text()
