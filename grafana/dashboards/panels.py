"""The panel vocabulary: Grafana panel, query, row and field-config JSON, so that every panel
uses the same data source and the same drawing and colouring conventions."""

from __future__ import annotations

from typing import Any, Literal

from .queries import PROBE, probed

Panel = dict[str, Any]
Grid = tuple[int, int, int, int]

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


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
    grid: Grid,
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


Style = Literal["lines", "stacked", "bars"]


def timeseries_options(style: Style) -> tuple[Panel, Panel]:
    """Field defaults and options of a time series: one line per series, stacked areas (phases
    that add up to a whole) or stacked bars (counts)."""
    custom: Panel = {
        "drawStyle": "bars" if style == "bars" else "line",
        "fillOpacity": {"lines": 0, "stacked": 30, "bars": 60}[style],
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "none" if style == "lines" else "normal", "group": "A"},
    }
    options: Panel = {
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return {"custom": custom}, options


def timeseries(
    pid: int,
    title: str,
    targets: list[Panel],
    grid: Grid,
    *,
    description: str,
    unit: str = "short",
    style: Style = "lines",
    defaults: Panel | None = None,
    overrides: list[Panel] | None = None,
) -> Panel:
    """A time series panel drawn in `style`; `defaults` adds field defaults (min, max, decimals)."""
    custom, options = timeseries_options(style)
    return panel(
        pid,
        "timeseries",
        title,
        targets,
        grid,
        description=description,
        unit=unit,
        defaults={**(defaults or {}), **custom},
        overrides=overrides,
        options=options,
    )


def stat(
    pid: int,
    title: str,
    targets: list[Panel],
    grid: Grid,
    *,
    description: str,
    unit: str = "short",
    defaults: Panel | None = None,
    colored: bool = True,
    named: bool = False,
) -> Panel:
    """A single-value panel without a sparkline: `colored` fills it with the value's colour,
    `named` shows each value's legend (one value per exporter) next to it."""
    return panel(
        pid,
        "stat",
        title,
        targets,
        grid,
        description=description,
        unit=unit,
        defaults=defaults,
        options={
            "colorMode": "background" if colored else "none",
            "graphMode": "none",
            "textMode": "value_and_name" if named else "value",
        },
    )


def threshold_steps(*steps: tuple[str, float | None]) -> Panel:
    """Colours by value: each (colour, from) step holds from its value on; the first from None."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


def thresholds(*steps: tuple[str, float | None]) -> Panel:
    return {"thresholds": threshold_steps(*steps)}


def value_map(*entries: tuple[str, str] | tuple[str, str, str]) -> Panel:
    """Colours (and optionally renames) exact values: entries are (value, colour[, text])."""
    options: Panel = {}
    for index, (value, color, *text) in enumerate(entries):
        options[value] = {**({"text": text[0]} if text else {}), "color": color, "index": index}
    return {"type": "value", "options": options}


def prop(name: str, value: Any) -> Panel:
    """One field property of an override."""
    return {"id": name, "value": value}


# Table cells coloured by their value's threshold step or value mapping.
COLORED_CELLS = prop("custom.cellOptions", {"type": "color-background"})
# A probe's verdict (probe_success and the like), as the status table and timelines show it.
UP_DOWN = value_map(("1", "green", "UP"), ("0", "red", "DOWN"))


def column(name: str, *properties: Panel) -> Panel:
    """Overrides the field properties of one table column, by its name."""
    return {"matcher": {"id": "byName", "options": name}, "properties": list(properties)}


def series(ref: str, *properties: Panel) -> Panel:
    """Overrides the field properties of the series of one query, by its refId."""
    return {"matcher": {"id": "byFrameRefID", "options": ref}, "properties": list(properties)}


def limit_line(ref: str) -> Panel:
    """Draws query `ref` as a dashed red line: the limit (a timeout) the other series stay under."""
    return series(
        ref,
        prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
        prop("color", {"mode": "fixed", "fixedColor": "red"}),
    )


def against_timeout(
    pid: int, title: str, metric: str, grid: Grid, *, description: str, only: str = ""
) -> Panel:
    """A duration per probe, in seconds, under the timeout of its module drawn as a dashed line;
    `only` restricts the timeouts to the probes the duration exists for (an `and on(...)`)."""
    timeout = f"probe_timeout_seconds{{{PROBE}}}" + (f" {only}" if only else "")
    return timeseries(
        pid,
        title,
        [
            target(probed(f"{metric}{{{PROBE}}}"), legend="{{target}} ({{module}})"),
            target(f"max by (module) ({probed(timeout)})", ref="B", legend="timeout {{module}}"),
        ],
        grid,
        description=description,
        unit="s",
        overrides=[limit_line("B")],
    )


def state_timeline(
    pid: int,
    title: str,
    targets: list[Panel],
    grid: Grid,
    *,
    description: str,
    mappings: Panel,
    overrides: list[Panel] | None = None,
) -> Panel:
    """One bar per series over time, coloured and named by the value mapping, without legend."""
    return panel(
        pid,
        "state-timeline",
        title,
        targets,
        grid,
        description=description,
        defaults={"mappings": [mappings], "color": {"mode": "thresholds"}},
        overrides=overrides,
        options={
            "mergeValues": True,
            "showValue": "never",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )


def sort_by(name: str, *, desc: bool = False) -> Panel:
    """Table options: rows sorted by column `name`, the worst first."""
    return {"showHeader": True, "sortBy": [{"displayName": name, "desc": desc}]}


def hide_columns(*names: str) -> Panel:
    return {
        "id": "organize",
        "options": {"excludeByName": dict.fromkeys(names, True), "renameByName": {}},
    }
