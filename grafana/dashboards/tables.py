"""Table panels: label tables, outcome tables (a verdict and its reason) and per-target tables
that merge several queries into one row per probe."""

from __future__ import annotations

from typing import NamedTuple

from .panels import COLORED_CELLS, Grid, Panel, column, hide_columns, panel, prop, sort_by, target
from .queries import PROBE, PROBE_KEY, probed


def labels_table(
    pid: int,
    title: str,
    expr: str,
    grid: Grid,
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
    grid: Grid,
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


def outcome_table(
    pid: int,
    title: str,
    metrics: tuple[str, str],
    grid: Grid,
    *,
    description: str,
    name: str,
    mappings: Panel,
    worst_first: bool = False,
    hide: tuple[str, ...] = (),
) -> Panel:
    """The latest outcome of every probe, as column `name`, and its reason where it has one.

    `metrics` is the outcome gauge and its reason info metric, which only some probes carry:
    the reason joins onto those, and `or on(...)` adds the others without one. Sorted by the
    outcome, 0 first unless `worst_first` says that 1 is the bad value."""
    outcome, reason = metrics
    on_probe = f"on({PROBE_KEY})"
    query = (
        f"({outcome}{{{PROBE}}} * {on_probe} group_left(reason) {reason}{{{PROBE}}}) "
        f"or {on_probe} {outcome}{{{PROBE}}}"
    )
    return panel(
        pid,
        "table",
        title,
        [target(probed(query), instant=True)],
        grid,
        description=description,
        overrides=[
            column("Value", prop("displayName", name), prop("mappings", [mappings]), COLORED_CELLS)
        ],
        options=sort_by(name, desc=worst_first),
        transformations=[hide_columns("Time", "__name__", *hide)],
    )
