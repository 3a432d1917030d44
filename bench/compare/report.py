"""The tables: medians over repeats, sonde against blackbox (and variants against sonde),
as Markdown, and the summary rows the JSON lines file keeps beside the raw ones."""

from __future__ import annotations

from typing import Any

from .stats import median


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def md_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


Runs = dict[str, list[dict[str, Any]]]
"""Rows of one workload level, by exporter name."""


def cost_view(row: dict[str, Any]) -> dict[str, Any]:
    """The figures the cost table shows, from a load generator (tcp, icmp) row or a wrk row."""
    if row["kind"] in ("tcp", "icmp"):
        proc = row.get("exporter_proc") or {}
        return {
            "rate": row.get("probes_per_s"),
            "cpu": proc.get("cpu_s_per_1000_probes"),
            "rss": proc.get("peak_rss_mb_hwm"),
            "ok": row.get("success_share"),
            "client": row.get("client_cpu_cores"),
            "busy": row.get("machine_cpu_busy_share"),
        }
    return {
        "rate": row.get("requests_per_s"),
        "cpu": row.get("cpu_s_per_1000_probes"),
        "rss": row.get("peak_rss_mb_hwm"),
        "ok": row.get("success_share"),
        "client": row.get("client_cpu_cores"),
        "busy": row.get("machine_cpu_busy_share"),
    }


# (label, row kind, ICMP mode, level key): the sections of the cost and variant tables.
SECTIONS = (
    ("python", "tcp", None, "concurrency"),
    ("wrk", "wrk", None, "connections"),
    ("raw", "icmp", "raw", "concurrency"),
    ("dgram", "icmp", "dgram", "concurrency"),
)


def group(
    rows: list[dict[str, Any]], kind: str, level_key: str, mode: str | None = None
) -> dict[int, Runs]:
    grouped: dict[int, Runs] = {}
    for row in rows:
        if row.get("kind") == kind and row.get("mode") == mode:
            grouped.setdefault(row[level_key], {}).setdefault(row["exporter"], []).append(row)
    return grouped


def median_of(runs: Runs, name: str, section: str | None, key: str) -> float | None:
    """Median over repeats of row[key] (or row[section][key]) for one exporter."""
    values = []
    for row in runs.get(name, []):
        source = row if section is None else (row.get(section) or {})
        values.append(source.get(key))
    return median(values)


def cost_rows(
    rows: list[dict[str, Any]], summary: list[dict[str, Any]], kinds: tuple[str, ...]
) -> list[list[object]]:
    table: list[list[object]] = []
    for label, kind, mode, level_key in SECTIONS:
        if kind not in kinds:
            continue
        for level, runs in sorted(group(rows, kind, level_key, mode).items()):
            views: Runs = {n: [cost_view(r) for r in rs] for n, rs in runs.items()}
            s = {k: median_of(views, "sonde", None, k) for k in ("rate", "cpu", "rss", "ok")}
            b = {k: median_of(views, "blackbox", None, k) for k in ("rate", "cpu", "rss", "ok")}
            both = [v for vs in views.values() for v in vs]
            client_cores = median([v["client"] for v in both])
            busy = median([v["busy"] for v in both])
            table.append(
                [
                    label,
                    level,
                    s["rate"],
                    b["rate"],
                    _ratio(s["rate"], b["rate"]),
                    s["cpu"],
                    b["cpu"],
                    _ratio(s["cpu"], b["cpu"]),
                    s["rss"],
                    b["rss"],
                    _ratio(s["rss"], b["rss"]),
                    f"{_share(s['ok'])} / {_share(b['ok'])}",
                    client_cores,
                    busy,
                ]
            )
            summary.append(
                {
                    "kind": "summary",
                    "workload": f"icmp-{mode}" if kind == "icmp" else f"tcp-{label}",
                    "concurrency": level,
                    "sonde": s,
                    "blackbox": b,
                    "client_cpu_cores": client_cores,
                    "machine_cpu_busy_share": busy,
                }
            )
    return table


COST_HEADERS = [
    "sonde probes/s",
    "bbx probes/s",
    "ratio",
    "sonde CPU s/1k",
    "bbx CPU s/1k",
    "ratio",
    "sonde peak RSS MB",
    "bbx peak RSS MB",
    "ratio",
    "success sonde / bbx",
    "client cores",
    "box busy",
]


def cost_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    table = cost_rows(rows, summary, ("tcp", "wrk"))
    if not table:
        return None
    return "TCP connect: cost (medians over repeats; ratio = sonde / blackbox)\n\n" + md_table(
        ["client", "c", *COST_HEADERS], table
    )


def icmp_cost_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    table = cost_rows(rows, summary, ("icmp",))
    if not table:
        return None
    return (
        "ICMP echo, count=1: cost (python client; raw = raw sockets on the host, dgram ="
        " datagram sockets in a network namespace; medians over repeats; ratio = sonde /"
        " blackbox)\n\n"
    ) + md_table(["mode", "c", *COST_HEADERS], table)


def accuracy_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    keys = ("reported_p50_ms", "reported_p99_ms", "direct_p99_ms", "error_p99_ms")
    table = []
    for level, runs in sorted(group(rows, "tcp", "concurrency").items()):
        row: list[object] = [level]
        entry: dict[str, Any] = {
            "kind": "summary",
            "workload": "tcp-accuracy",
            "concurrency": level,
        }
        for name in ("sonde", "blackbox"):
            figures = {k: median_of(runs, name, "accuracy", k) for k in keys}
            entry[name] = figures
            row += list(figures.values())
        table.append(row)
        summary.append(entry)
    if not table:
        return None
    return (
        "TCP accuracy, ms: p99 of the reported figure against the p99 of a direct blocking"
        " connect() timed at the same moment (sonde: probe_tcp_rtt_seconds; blackbox:"
        " probe_duration_seconds; error = reported p99 - direct p99)\n\n"
    ) + md_table(
        [
            "c",
            "sonde rtt p50",
            "sonde rtt p99",
            "direct p99",
            "sonde error",
            "bbx duration p50",
            "bbx duration p99",
            "direct p99",
            "bbx error",
        ],
        table,
    )


def icmp_accuracy_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    keys = ("reported_p50_ms", "reported_p99_ms", "direct_p99_ms", "error_p99_ms")
    table = []
    for mode in ("raw", "dgram"):
        for level, runs in sorted(group(rows, "icmp", "concurrency", mode).items()):
            row: list[object] = [mode, level]
            entry: dict[str, Any] = {
                "kind": "summary",
                "workload": f"icmp-{mode}-accuracy",
                "concurrency": level,
            }
            for name in ("sonde", "blackbox"):
                figures = {k: median_of(runs, name, "accuracy", k) for k in keys}
                entry[name] = figures
                row += list(figures.values())
            drops = [
                (r.get("sonde_icmp") or {}).get("receive_drops") for r in runs.get("sonde", [])
            ]
            entry["sonde_receive_drops"] = sum(d for d in drops if d is not None)
            row.append(entry["sonde_receive_drops"])
            table.append(row)
            summary.append(entry)
    if not table:
        return None
    return (
        "ICMP accuracy, ms: p99 of the reported echo RTT (both: probe_icmp_duration_seconds"
        '{phase="rtt"}) against the p99 of a direct echo timed at the same moment by a'
        " separate process; error = reported p99 - direct p99; drops = replies sonde's shared"
        " socket lost to a full receive buffer (sum over repeats)\n\n"
    ) + md_table(
        [
            "mode",
            "c",
            "sonde rtt p50",
            "sonde rtt p99",
            "direct p99",
            "sonde error",
            "bbx rtt p50",
            "bbx rtt p99",
            "direct p99",
            "bbx error",
            "sonde drops",
        ],
        table,
    )


def soak_table(rows: list[dict[str, Any]]) -> str | None:
    soak = [r for r in rows if r.get("kind") == "soak"]
    if not soak:
        return None
    return "RSS / fd soak (after a warm-up; growth = after - before)\n\n" + md_table(
        [
            "exporter",
            "c",
            "probes",
            "probes/s",
            "success",
            "RSS before MB",
            "RSS after MB",
            "growth MB",
            "fds before",
            "fds after",
            "peak RSS MB",
        ],
        [
            [
                r["exporter"],
                r["concurrency"],
                r["probes"],
                r["probes_per_s"],
                _share(r["success_share"]),
                r["before"]["rss_mb"],
                r["after"]["rss_mb"],
                r["rss_growth_mb"],
                r["before"]["fds"],
                r["after"]["fds"],
                r["peak_rss_mb_hwm"],
            ]
            for r in soak
        ],
    )


def startup_table(rows: list[dict[str, Any]]) -> str | None:
    startup = [r for r in rows if r.get("kind") == "startup"]
    if not startup:
        return None
    return "Start-up: exec to /-/ready answering 200, ms\n\n" + md_table(
        ["exporter", "runs", "min", "median", "max"],
        [[r["exporter"], r["runs"], r["min_ms"], r["median_ms"], r["max_ms"]] for r in startup],
    )


def variants_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    """Lever experiments (--variant): each variant against plain sonde, same run."""
    table = []
    for client, kind, mode, level_key in SECTIONS:
        for level, runs in sorted(group(rows, kind, level_key, mode).items()):
            views: Runs = {n: [cost_view(r) for r in rs] for n, rs in runs.items()}
            base = {k: median_of(views, "sonde", None, k) for k in ("rate", "cpu", "rss", "ok")}
            for name in views:
                if name in ("sonde", "blackbox"):
                    continue
                v = {k: median_of(views, name, None, k) for k in ("rate", "cpu", "rss", "ok")}
                table.append(
                    [
                        f"icmp {client}" if kind == "icmp" else client,
                        level,
                        name,
                        v["rate"],
                        _ratio(v["rate"], base["rate"]),
                        v["cpu"],
                        _ratio(v["cpu"], base["cpu"]),
                        v["rss"],
                        _share(v["ok"]),
                    ]
                )
                summary.append(
                    {
                        "kind": "summary",
                        "workload": f"variant-{'icmp-' if kind == 'icmp' else ''}{client}",
                        "concurrency": level,
                        "variant": name,
                        "figures": v,
                        "sonde": base,
                    }
                )
    if not table:
        return None
    return "Lever experiments: each variant against plain sonde in the same run\n\n" + md_table(
        [
            "client",
            "c",
            "variant",
            "probes/s",
            "vs sonde",
            "CPU s/1k",
            "vs sonde",
            "peak RSS MB",
            "success",
        ],
        table,
    )


def report(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown tables (medians over repeats) and the summary rows for the JSON file."""
    summary: list[dict[str, Any]] = []
    parts = [
        cost_table(rows, summary),
        accuracy_table(rows, summary),
        icmp_cost_table(rows, summary),
        icmp_accuracy_table(rows, summary),
        variants_table(rows, summary),
        soak_table(rows),
        startup_table(rows),
    ]
    return "\n\n".join(p for p in parts if p) + "\n", summary
