"""Writes grafana/dashboard.json, the sonde-exporter dashboard for Grafana 10 and 11.

The JSON is generated so that every panel filters on the same template variables and every
panel id stays stable (alert rules link to them). Run `python grafana/dashboard.py` after an
edit; tests/test_dashboard.py fails while dashboard.json differs from what this writes.

Layout: one row per concern, each row a function returning its panels. Panel ids are grouped
per row (row id + 1, 2, ...), so a prober's row slots in without renumbering the others:
  100 status, 200 latency, 300 failures, 400 TLS, 500 ICMP (loss, RTT, jitter),
  600 email (delivery time, phases, sent vs delivered, verdicts), 700 probe policies (attempts,
  degraded, inverted checks, assertions), 900 the exporter's own health.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal, NamedTuple

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
# One series per probe, for the per-target tables' merge of several queries into one row.
PER_TARGET = "max by (job, instance, module, target)"
# One series per assertion of a probe, for the assertion table.
PER_ASSERTION = "max by (job, instance, module, target, assertion, source, comparison)"
# Keeps series of email probes only: probe_email_send_success is in every email probe's output.
IS_EMAIL = f"and on(job, instance, module, target) probe_email_send_success{{{PROBE}}}"


def filled(expr: str, label: str, source: str, first: str) -> str:
    """`expr` with `label` kept where it is set and copied from `source` where it is empty.

    PromQL has no "if empty": label_join writes "label;source" into `label`, and label_replace
    keeps the part before the separator, or after it when nothing comes before. `first` is the
    group that picks that part out of "label;source": greedy when only `label` may hold a ";",
    lazy when only `source` may.
    """
    joined = f'label_join({expr}, "{label}", ";", "{label}", "{source}")'
    return f'label_replace({joined}, "{label}", "$1$2", "{label}", ";(.*)|{first};.*")'


def probed(expr: str) -> str:
    """`expr` (probe series) with a `target` and a `module` label under either scrape config.

    grafana/prometheus.yml sets both. The classic blackbox_exporter relabeling sets neither and
    writes the target into `instance`: `target` is taken from there, and `module` from the job
    name, the only place such a config names it. Legends and table columns built on `target`
    and `module` then show the probed address and the job for those jobs.
    """
    return filled(filled(expr, "target", "instance", "(.*)"), "module", "job", "(.*?)")


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
    grid: tuple[int, int, int, int],
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
    grid: tuple[int, int, int, int],
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
# A state timeline's options: one bar per series, coloured by the value mappings, no legend.
STATE_TIMELINE: Panel = {
    "mergeValues": True,
    "showValue": "never",
    "alignValue": "left",
    "rowHeight": 0.9,
    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
    "tooltip": {"mode": "single", "sort": "none"},
}


def column(name: str, *properties: Panel) -> Panel:
    """Overrides the field properties of one table column, by its name."""
    return {"matcher": {"id": "byName", "options": name}, "properties": list(properties)}


def limit_line(ref: str) -> Panel:
    """Draws query `ref` as a dashed red line: the limit (a timeout) the other series stay under."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
            prop("color", {"mode": "fixed", "fixedColor": "red"}),
        ],
    }


def sort_by(name: str, *, desc: bool = False) -> Panel:
    """Table options: rows sorted by column `name`, the worst first."""
    return {"showHeader": True, "sortBy": [{"displayName": name, "desc": desc}]}


def hide_columns(*names: str) -> Panel:
    return {
        "id": "organize",
        "options": {"excludeByName": dict.fromkeys(names, True), "renameByName": {}},
    }


def labels_table(
    pid: int,
    title: str,
    expr: str,
    grid: tuple[int, int, int, int],
    *,
    description: str,
    hide: tuple[str, ...] = (),
    overrides: list[Panel] | None = None,
) -> Panel:
    """A table of the label sets `expr` returns, one row each, for series whose value says
    nothing (info metrics `== 1`, `up == 0`); `hide` drops further label columns."""
    return panel(
        pid,
        "table",
        title,
        [target(expr, instant=True)],
        grid,
        description=description,
        overrides=overrides,
        transformations=[hide_columns("Time", "__name__", "Value", *hide)],
    )


class Column(NamedTuple):
    """A value column of a per-target table: the latest value of `query`, shown as `name`."""

    ref: str
    query: str
    name: str
    unit: str
    decimals: int | None = None
    extra: tuple[Panel, ...] = ()  # further field properties: colours, value mappings


def column_overrides(columns: list[Column]) -> list[Panel]:
    """Name, unit and decimals of a merged table's value columns ("Value #A", ...)."""
    out: list[Panel] = []
    for c in columns:
        decimals = [] if c.decimals is None else [prop("decimals", c.decimals)]
        out.append(
            column(
                f"Value #{c.ref}",
                prop("displayName", c.name),
                prop("unit", c.unit),
                *decimals,
                *c.extra,
            )
        )
    return out


def latest_table(
    pid: int,
    title: str,
    columns: list[Column],
    grid: tuple[int, int, int, int],
    *,
    description: str,
    options: Panel,
) -> Panel:
    """One row per probe (job, instance, module, target), or per finer label set, merging the
    columns' queries, whose results must carry exactly those labels (PER_TARGET, PER_ASSERTION)."""
    return panel(
        pid,
        "table",
        title,
        [target(probed(c.query), ref=c.ref, instant=True) for c in columns],
        grid,
        description=description,
        overrides=column_overrides(columns),
        options=options,
        transformations=[{"id": "merge", "options": {}}, hide_columns("Time", "job")],
    )


def status_row(y: int) -> list[Panel]:
    up_down = value_map(("1", "green", "UP"), ("0", "red", "DOWN"))
    success_over_range = probed(f"avg_over_time(probe_success{{{PROBE}}}[$__range])")
    return [
        row(100, "Status", y),
        stat(
            101,
            "Targets up",
            [target(f"count(probe_success{{{PROBE}}} == 1) or vector(0)", instant=True)],
            (0, y + 1, 4, 4),
            description="Targets whose latest probe succeeded.",
            defaults=thresholds(("green", None)),
        ),
        stat(
            102,
            "Targets down",
            [target(f"count(probe_success{{{PROBE}}} == 0) or vector(0)", instant=True)],
            (0, y + 5, 4, 4),
            description="Targets whose latest probe failed; the table says why.",
            defaults=thresholds(("green", None), ("red", 1)),
        ),
        panel(
            103,
            "table",
            "Status per target",
            [
                # Failing probes carry their reason label; `or on(...)` adds the others.
                target(
                    probed(
                        f"(probe_success{{{PROBE}}} * on(job, instance, module, target) "
                        f"group_left(reason) probe_failure_reason{{{PROBE}}}) "
                        f"or on(job, instance, module, target) probe_success{{{PROBE}}}"
                    ),
                    instant=True,
                )
            ],
            (4, y + 1, 14, 8),
            description="Latest result of every probe and, when it failed, the failure reason "
            "(the documented fixed set: connect_refused, connect_timeout, tls_verify, "
            "packet_loss, icmp_permission, smtp_auth, not_delivered, ...). instance is the "
            "exporter that ran the probe; in jobs with the classic blackbox_exporter relabeling "
            "it is the target, and module shows the job's name.",
            overrides=[
                column(
                    "Value",
                    prop("displayName", "Status"),
                    prop("mappings", [up_down]),
                    COLORED_CELLS,
                )
            ],
            options=sort_by("Status"),
            transformations=[hide_columns("Time", "__name__")],
        ),
        labels_table(
            104,
            "Probe scrapes failing",
            probed(
                f'(up{{{PROBE}, module!=""}} == 0) or (up{{job=~"$job", instance=~"$instance"}} '
                f"== 0 and on(job) probe_success{{{PROBE}}})"
            ),
            (18, y + 1, 6, 8),
            description="Probe jobs Prometheus could not scrape: no result at all, so these "
            "targets are missing from the status table. Usually the exporter is down or the "
            "job's scrape_timeout is shorter than the module's timeout. Empty when all is well. "
            "A job with the classic blackbox_exporter relabeling (no module label) shows here "
            "while another of its targets still reports a result.",
        ),
        panel(
            105,
            "bargauge",
            "Availability over the time range",
            [
                target(
                    f"avg by (target, module) ({success_over_range})",
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
    return [
        row(200, "Latency", y),
        timeseries(
            201,
            "TCP latency by phase",
            [
                target(
                    probed(f"probe_tcp_duration_seconds{{{PROBE}}}"), legend="{{target}} {{phase}}"
                )
            ],
            (0, y + 1, 12, 8),
            description="Time spent in each phase of the TCP probe (resolve, connect, tls, "
            "query), stacked: the top of each stack is the whole probe.",
            unit="s",
            style="stacked",
        ),
        timeseries(
            202,
            "TCP handshake round trip (kernel)",
            [target(probed(f"probe_tcp_rtt_seconds{{{PROBE}}}"), legend="{{target}}")],
            (12, y + 1, 12, 8),
            description="The kernel's own round-trip measure of the TCP handshake (TCP_INFO); "
            "unaffected by the exporter's load.",
            unit="s",
        ),
        timeseries(
            203,
            "Probe duration against timeout",
            [
                target(
                    probed(f"probe_duration_seconds{{{PROBE}}}"), legend="{{target}} ({{module}})"
                ),
                target(
                    f"max by (module) ({probed(f'probe_timeout_seconds{{{PROBE}}}')})",
                    ref="B",
                    legend="timeout {{module}}",
                ),
            ],
            (0, y + 9, 24, 8),
            description="How long each probe took, and the timeout it ran under (dashed): "
            "the module's timeout capped by the scrape timeout minus --timeout-offset. A probe "
            "that reaches its timeout fails.",
            unit="s",
            overrides=[limit_line("B")],
        ),
    ]


def failures_row(y: int) -> list[Panel]:
    return [
        row(300, "Failures", y),
        timeseries(
            301,
            "Failure reasons over time",
            [
                target(
                    f"count by (reason) (probe_failure_reason{{{PROBE}}} == 1)",
                    legend="{{reason}}",
                )
            ],
            (0, y + 1, 24, 8),
            description="How many targets fail, by failure reason (TCP, TLS, ICMP and email "
            "alike: e.g. connect_refused, tls_verify, timeout, packet_loss, icmp_permission, "
            "smtp_rejected, receive_auth, not_delivered).",
            style="bars",
        ),
    ]


def policies_row(y: int) -> list[Panel]:
    """Retries, degraded state, inverted checks and assertions (README "Probe policies").
    Each panel shows only the probes of modules that set the policy: the others have none of
    these series."""
    verdicts = value_map(("0", "red", "DOWN"), ("1", "green", "UP"), ("2", "orange", "DEGRADED"))
    held = value_map(("1", "green", "held"), ("0", "red", "failed"))
    # For should_fail modules the raw outcome is good when the checks failed.
    raw = value_map(("1", "red", "checks passed"), ("0", "green", "checks failed"))
    up_down = value_map(("1", "green", "UP"), ("0", "red", "DOWN"))
    attempts = f"probe_attempts{{{PROBE}}}"
    # 1 for a probe that succeeded only after a retry: what SondeProbeFlapping counts.
    passed_after_retry = f"(({attempts} > bool 1) * probe_success{{{PROBE}}})"
    retry_columns = [
        Column("A", f"{PER_TARGET} ({attempts})", "Attempts (latest)", "none", 0),
        Column(
            "B", f"{PER_TARGET} (max_over_time({attempts}[$__range]))", "Most attempts", "none", 0
        ),
        Column(
            "C",
            f"{PER_TARGET} (sum_over_time({attempts}[$__range]) "
            f"- count_over_time({attempts}[$__range]))",
            "Retries in range",
            "none",
            0,
        ),
        Column(
            "D",
            f"{PER_TARGET} (avg_over_time({passed_after_retry}[$__range:$__interval]))",
            "Passed after retries",
            "percentunit",
            1,
            (prop("thresholds", threshold_steps(("green", None), ("orange", 0.1))), COLORED_CELLS),
        ),
    ]
    assertion_columns = [
        Column(
            "A",
            f"{PER_ASSERTION} (probe_assertion_success{{{PROBE}}})",
            "Latest",
            "none",
            0,
            (prop("mappings", [held]), COLORED_CELLS),
        ),
        Column(
            "B",
            f"{PER_ASSERTION} (avg_over_time(probe_assertion_success{{{PROBE}}}[$__range]))",
            "Held in range",
            "percentunit",
            1,
            (
                prop("thresholds", threshold_steps(("red", None), ("orange", 0.95), ("green", 1))),
                COLORED_CELLS,
            ),
        ),
    ]
    return [
        row(700, "Probe policies", y),
        timeseries(
            701,
            "Attempts per probe",
            [target(probed(attempts), legend="{{target}} ({{module}})")],
            (0, y + 1, 12, 8),
            description="Attempts each probe of a module with retries made: 1 when the first "
            "attempt decided it, more when it was retried. A probe that succeeds with 2 or 3 "
            "is up only thanks to its retries; SondeProbeFlapping fires when that happens in "
            "over 10% of the last 15 minutes.",
            defaults={"min": 0, "decimals": 0},
        ),
        timeseries(
            702,
            "Failed attempts by reason",
            [
                target(
                    f"count by (attempt, reason) (probe_attempt_failure_reason{{{PROBE}}} == 1)",
                    legend="attempt {{attempt}}: {{reason}}",
                )
            ],
            (12, y + 1, 12, 8),
            description="Failed attempts of the latest probes, by attempt number and reason, "
            "whether a later attempt then succeeded or not. retries.on: [network_error] retries "
            "dns, connect_refused, connect_timeout, connect_error, timeout, io_error, "
            "smtp_connect and receive_connect; [any] retries every reason.",
            style="bars",
        ),
        latest_table(
            703,
            "Retries per target",
            retry_columns,
            (0, y + 9, 24, 7),
            description="Which targets needed retries: attempts of the latest probe, the most "
            "over the time range, the retries started over the range, and the share of the "
            "range in which the latest probe had succeeded only after a retry (orange from "
            "10%, SondeProbeFlapping's threshold).",
            options=sort_by("Passed after retries", desc=True),
        ),
        panel(
            704,
            "state-timeline",
            "Degraded",
            [
                target(
                    probed(f"probe_success{{{PROBE}}} * (1 + probe_degraded{{{PROBE}}})"),
                    legend="{{target}} ({{module}})",
                )
            ],
            (0, y + 16, 12, 8),
            description="Probes of modules with degraded_response_time: UP, DEGRADED (succeeded "
            "with a response time over degraded_response_time) or DOWN. SondeProbeDegraded "
            "fires when a probe is degraded in over half of the last 10 minutes.",
            defaults={"mappings": [verdicts], "color": {"mode": "thresholds"}},
            options=STATE_TIMELINE,
        ),
        latest_table(
            705,
            "Assertions",
            assertion_columns,
            (12, y + 16, 12, 8),
            description="Each assertion of each probe, by its position in the module (from 0), "
            "source and comparison: whether it held in the latest probe, and in which share of "
            "the time range. A failed assertion fails the probe with assertion_failed; "
            "assertions are evaluated only when the prober succeeded, so a failing probe has "
            "no latest result here.",
            options=sort_by("Held in range"),
        ),
        panel(
            706,
            "state-timeline",
            "Inverted checks: raw outcome and verdict",
            [
                target(probed(f"probe_raw_success{{{PROBE}}}"), legend="{{target}} raw"),
                target(
                    probed(f"probe_success{{{PROBE}}} and probe_raw_success{{{PROBE}}}"),
                    ref="B",
                    legend="{{target}} verdict",
                ),
            ],
            (0, y + 24, 12, 8),
            description="Modules with should_fail: true. Raw is what the checks found (the "
            "prober, max_response_time and the assertions), verdict is probe_success: "
            "checks that failed make the probe UP, checks that passed make it DOWN with "
            "unexpected_success.",
            defaults={"mappings": [up_down], "color": {"mode": "thresholds"}},
            overrides=[
                {
                    "matcher": {"id": "byFrameRefID", "options": "A"},
                    "properties": [prop("mappings", [raw])],
                }
            ],
            options=STATE_TIMELINE,
        ),
        panel(
            707,
            "table",
            "Inverted checks per target",
            [
                target(
                    probed(
                        f"(probe_raw_success{{{PROBE}}} * on(job, instance, module, target) "
                        f"group_left(reason) probe_raw_failure_reason{{{PROBE}}}) "
                        f"or on(job, instance, module, target) probe_raw_success{{{PROBE}}}"
                    ),
                    instant=True,
                )
            ],
            (12, y + 24, 12, 8),
            description="The latest raw outcome of each should_fail probe and, when its "
            "checks failed (which makes the probe succeed), why: the reason the probe would "
            "have failed with without should_fail.",
            overrides=[
                column(
                    "Value", prop("displayName", "Checks"), prop("mappings", [raw]), COLORED_CELLS
                )
            ],
            options=sort_by("Checks", desc=True),
            transformations=[hide_columns("Time", "__name__", "job")],
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
                    probed(f"(probe_ssl_earliest_cert_expiry{{{PROBE}}} - time()) / 86400"),
                    instant=True,
                )
            ],
            (0, y + 1, 16, 8),
            description="Days until the first certificate the target sent expires. The alert "
            "SondeCertificateExpiringSoon fires below 14.",
            unit="none",
            defaults=thresholds(("red", None), ("orange", 7), ("green", 14)),
            overrides=[
                column(
                    "Value",
                    prop("displayName", "Days left"),
                    prop("decimals", 1),
                    COLORED_CELLS,
                )
            ],
            options=sort_by("Days left"),
            transformations=[hide_columns("Time")],
        ),
        labels_table(
            402,
            "TLS version",
            probed(f"probe_tls_version_info{{{PROBE}}} == 1"),
            (16, y + 1, 8, 8),
            description="TLS version negotiated by the latest probe of each target.",
            hide=("job", "instance"),
        ),
    ]


def icmp_row(y: int) -> list[Panel]:
    # Any loss orange, from the SondeIcmpPacketLoss threshold (10%) on red.
    loss_steps = threshold_steps(("green", None), ("orange", 0.0001), ("red", 0.1))
    columns = [
        Column("A", f"{PER_TARGET} (probe_icmp_packets_sent{{{PROBE}}})", "Sent", "none", 0),
        Column(
            "B", f"{PER_TARGET} (probe_icmp_packets_received{{{PROBE}}})", "Received", "none", 0
        ),
        Column(
            "C", f"{PER_TARGET} (probe_icmp_duplicate_replies{{{PROBE}}})", "Duplicates", "none", 0
        ),
        Column(
            "D",
            f"{PER_TARGET} (probe_icmp_packet_loss_ratio{{{PROBE}}})",
            "Loss",
            "percentunit",
            1,
            (prop("thresholds", loss_steps), COLORED_CELLS),
        ),
        Column(
            "E", f'{PER_TARGET} (probe_icmp_rtt_seconds{{{PROBE}, stat="avg"}})', "RTT avg", "s"
        ),
        Column("F", f"{PER_TARGET} (probe_icmp_jitter_seconds{{{PROBE}}})", "Jitter", "s"),
        Column(
            "G", f"{PER_TARGET} (probe_icmp_reply_hop_limit{{{PROBE}}})", "Hop limit", "none", 0
        ),
    ]
    return [
        row(500, "ICMP", y),
        timeseries(
            501,
            "ICMP packet loss",
            [
                target(
                    probed(f"probe_icmp_packet_loss_ratio{{{PROBE}}}"),
                    legend="{{target}} ({{module}})",
                )
            ],
            (0, y + 1, 12, 8),
            description="Share of each probe's echo requests that got no reply (config.yml's "
            "icmp module sends 3, so steps of 1/3). No point where a probe sent nothing: it "
            "failed before sending, and the status table says why. The alert "
            "SondeIcmpPacketLoss fires above 10% over 5 minutes.",
            unit="percentunit",
            defaults={"min": 0, "max": 1},
        ),
        timeseries(
            502,
            "ICMP round-trip time",
            [
                target(
                    probed(f'probe_icmp_rtt_seconds{{{PROBE}, stat=~"min|avg|max"}}'),
                    legend="{{target}} {{stat}}",
                )
            ],
            (12, y + 1, 12, 8),
            description="Minimum, mean and maximum round-trip time over the replies of each "
            "probe, from the kernel's receive timestamps (not inflated by a busy exporter). "
            "The alert SondeIcmpRttHigh fires when the mean stays above 200ms.",
            unit="s",
        ),
        timeseries(
            503,
            "ICMP jitter",
            [
                target(probed(f"probe_icmp_jitter_seconds{{{PROBE}}}"), legend="{{target}} jitter"),
                target(
                    probed(f'probe_icmp_rtt_seconds{{{PROBE}, stat="stddev"}}'),
                    ref="B",
                    legend="{{target}} stddev",
                ),
            ],
            (0, y + 9, 8, 8),
            description="Jitter: mean absolute difference between the RTTs of consecutive "
            "replies of a probe (needs two replies). Standard deviation of the probe's RTTs "
            "for comparison. The alert SondeIcmpJitterHigh fires when jitter stays above 30ms.",
            unit="s",
        ),
        timeseries(
            504,
            "ICMP time by phase",
            [
                target(
                    probed(f"probe_icmp_duration_seconds{{{PROBE}}}"), legend="{{target}} {{phase}}"
                )
            ],
            (8, y + 9, 8, 8),
            description="blackbox_exporter's ICMP phases: resolve (name lookup), setup (socket "
            "and request building) and rtt, which is the mean round trip of the replies, not "
            "the time the probe spent waiting (that is probe_duration_seconds).",
            unit="s",
        ),
        timeseries(
            505,
            "ICMP reply hop limit",
            [target(probed(f"probe_icmp_reply_hop_limit{{{PROBE}}}"), legend="{{target}}")],
            (16, y + 9, 8, 8),
            description="TTL (IPv4) or hop limit (IPv6) of the last reply: the responder's "
            "starting value minus the routers on the way back. A step means the return path "
            "changed.",
            unit="none",
            defaults={"decimals": 0},
        ),
        latest_table(
            506,
            "ICMP per target (latest probe)",
            columns,
            (0, y + 17, 24, 8),
            description="The latest ICMP probe of each target: echo requests sent and answered, "
            "duplicate replies, loss, mean RTT, jitter and the reply's hop limit. Empty cells: "
            "the probe failed before sending or got no reply (the status table says why).",
            options=sort_by("Loss", desc=True),
        ),
    ]


def email_row(y: int) -> list[Panel]:
    yes_no = value_map(("1", "green", "yes"), ("0", "red", "no"))
    verdicts = value_map(
        ("pass", "green"),
        ("fail", "red"),
        ("permerror", "red"),
        ("softfail", "orange"),
        ("temperror", "orange"),
        ("neutral", "blue"),
        ("policy", "blue"),
    )
    yes_no_cells = (prop("mappings", [yes_no]), COLORED_CELLS)
    columns = [
        Column(
            "A",
            f"{PER_TARGET} (probe_email_send_success{{{PROBE}}})",
            "Sent",
            "none",
            0,
            yes_no_cells,
        ),
        Column(
            "B",
            f"{PER_TARGET} (probe_success{{{PROBE}}} {IS_EMAIL})",
            "Delivered",
            "none",
            0,
            yes_no_cells,
        ),
        Column("C", f"{PER_TARGET} (probe_email_delivery_seconds{{{PROBE}}})", "Delivery", "s"),
        Column(
            "D",
            "sum by (job, instance, module, target) "
            f'(probe_email_duration_seconds{{{PROBE}, phase=~"smtp_.*"}})',
            "SMTP",
            "s",
        ),
        Column(
            "E",
            "sum by (job, instance, module, target) "
            f'(probe_email_duration_seconds{{{PROBE}, phase=~"receive_.*"}})',
            "Mailbox session",
            "s",
        ),
    ]
    return [
        row(600, "Email", y),
        timeseries(
            601,
            "Email delivery time",
            [
                target(
                    probed(f"probe_email_delivery_seconds{{{PROBE}}}"),
                    legend="{{target}} ({{module}})",
                ),
                target(
                    f"max by (module) ({probed(f'probe_timeout_seconds{{{PROBE}}} {IS_EMAIL}')})",
                    ref="B",
                    legend="timeout {{module}}",
                ),
            ],
            (0, y + 1, 12, 8),
            description="Time from the SMTP server accepting the probe mail to the first mailbox "
            "poll that listed it (resolution: the poll interval plus one mailbox session). The "
            "dashed line is the probe's timeout: a mail slower than that fails the probe with "
            "not_delivered. SondeEmailDeliverySlow fires above half of it. No point where a "
            "probe failed.",
            unit="s",
            overrides=[limit_line("B")],
        ),
        panel(
            602,
            "state-timeline",
            "Email sent and delivered",
            [
                target(probed(f"probe_email_send_success{{{PROBE}}}"), legend="{{target}} sent"),
                target(
                    probed(f"probe_success{{{PROBE}}} {IS_EMAIL}"),
                    ref="B",
                    legend="{{target}} delivered",
                ),
            ],
            (12, y + 1, 12, 8),
            description="Per probe: did the SMTP server accept the mail (sent), and did the whole "
            "round trip succeed (delivered)? Sent but not delivered: the mail system lost or "
            "delayed it, or the mailbox could not be read (failure reason not_delivered or "
            "receive_*). Not sent: smtp_* failure reasons (SondeEmailSendFailing).",
            defaults={"mappings": [yes_no], "color": {"mode": "thresholds"}},
            options=STATE_TIMELINE,
        ),
        timeseries(
            603,
            "SMTP time by phase",
            [
                target(
                    probed(f'probe_email_duration_seconds{{{PROBE}, phase=~"smtp_.*"}}'),
                    legend="{{target}} {{phase}}",
                )
            ],
            (0, y + 9, 12, 8),
            description="Sending, stacked: smtp_connect (TCP connect, greeting and EHLO), "
            "smtp_tls (STARTTLS, or the handshake for smtps://), smtp_auth, smtp_send (MAIL, "
            "RCPT, DATA up to the 250). A phase that fails ends the probe with its reason "
            "(smtp_connect, smtp_tls, smtp_auth, smtp_rejected).",
            unit="s",
            style="stacked",
        ),
        timeseries(
            604,
            "Mailbox time by phase",
            [
                target(
                    probed(f'probe_email_duration_seconds{{{PROBE}, phase=~"receive_.*"}}'),
                    legend="{{target}} {{phase}}",
                )
            ],
            (12, y + 9, 12, 8),
            description="The POP3/IMAP session that found the mail, stacked: receive_connect, "
            "receive_tls, receive_auth, receive_retrieve (list and header reads) and "
            "receive_delete (delete and commit). Only probes that found their mail have them.",
            unit="s",
            style="stacked",
        ),
        labels_table(
            605,
            "Authentication-Results verdicts",
            probed(f"probe_email_auth_result{{{PROBE}}} == 1"),
            (0, y + 17, 10, 8),
            description="DKIM, SPF and DMARC verdicts the receiving server wrote into the "
            "probe mail's topmost Authentication-Results header. Empty for targets whose "
            "server adds no such header.",
            hide=("job",),
            overrides=[
                column(
                    "result",
                    prop("mappings", [verdicts]),
                    # Unmapped results (none, other) without colour, not the default green.
                    prop("color", {"mode": "fixed", "fixedColor": "transparent"}),
                    COLORED_CELLS,
                )
            ],
        ),
        latest_table(
            606,
            "Email per target (latest probe)",
            columns,
            (10, y + 17, 14, 8),
            description="The latest email probe of each target: sent, delivered, delivery "
            "time, and the time spent sending (SMTP) and in the mailbox session that found the "
            "mail. Empty cells: the probe failed before that step (the status table says why).",
            options=sort_by("Delivered"),
        ),
    ]


def exporter_row(y: int) -> list[Panel]:
    reload_ok = value_map(("1", "green", "OK"), ("0", "red", "FAILED"))
    socket_modes = value_map(
        ("datagram", "green"), ("raw", "green"), ("none", "red", "none (no permission)")
    )
    return [
        row(900, "Exporter health", y),
        timeseries(
            901,
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
            style="stacked",
        ),
        timeseries(
            902,
            "Probes in flight",
            [target(f"sonde_probes_in_flight{{{EXPORTER}}}", legend="{{instance}}")],
            (12, y + 1, 6, 8),
            description="Probes running at scrape time.",
        ),
        stat(
            903,
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
            defaults={"mappings": [reload_ok]},
            named=True,
        ),
        stat(
            904,
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
            colored=False,
            named=True,
        ),
        timeseries(
            905,
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
        ),
        timeseries(
            906,
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
        ),
        timeseries(
            907,
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
        ),
        labels_table(
            908,
            "ICMP socket mode",
            f"sonde_icmp_socket_mode{{{EXPORTER}}} == 1",
            (0, y + 17, 8, 6),
            description="The ICMP socket each exporter uses per IP protocol, chosen at start-up: "
            "datagram (unprivileged: its group is inside net.ipv4.ping_group_range), raw (root "
            "or CAP_NET_RAW; one shared socket per protocol) or none: ICMP probes then fail with "
            "icmp_permission, and SondeIcmpPermissionMissing fires once they do.",
            hide=("job",),
            overrides=[column("mode", prop("mappings", [socket_modes]), COLORED_CELLS)],
        ),
        timeseries(
            909,
            "ICMP socket drops and unmatched replies",
            [
                target(
                    "sum by (instance, ip_protocol) (rate(sonde_icmp_receive_drops_total"
                    f"{{{EXPORTER}}}[$__rate_interval]))",
                    legend="{{instance}} {{ip_protocol}} dropped (buffer full)",
                ),
                target(
                    "sum by (instance, ip_protocol) (rate(sonde_icmp_unmatched_replies_total"
                    f"{{{EXPORTER}}}[$__rate_interval]))",
                    ref="B",
                    legend="{{instance}} {{ip_protocol}} unmatched",
                ),
            ],
            (8, y + 17, 16, 6),
            description="Packets the kernel dropped because a shared ICMP socket's receive "
            "buffer was full (they show up as loss; should stay 0), and echo replies that "
            "matched no running probe: late replies, other programs' pings (raw mode), forgeries.",
            unit="pps",
        ),
        timeseries(
            910,
            "Email: late and stale probe mails",
            [
                target(
                    f"sum by (instance) (increase(sonde_email_late_mails_total{{{EXPORTER}}}[1h]))",
                    legend="{{instance}} late",
                ),
                target(
                    "sum by (instance) "
                    f"(increase(sonde_email_stale_mails_deleted_total{{{EXPORTER}}}[1h]))",
                    ref="B",
                    legend="{{instance}} stale, deleted",
                ),
            ],
            (0, y + 23, 24, 6),
            description="Per hour. Late: mails of this exporter's probes found after their "
            "probe had ended without them (it failed as not_delivered, the mail being slower "
            "than the timeout, or on the receive side). Stale: probe mails older than "
            "stale_after deleted from a mailbox, left by another exporter or from before a "
            "restart.",
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


if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT}\n")
