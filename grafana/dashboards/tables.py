"""Table panels: label tables and per-target tables that merge several queries into one row
per probe."""

from __future__ import annotations

from typing import NamedTuple

from .panels import Grid, Panel, column, hide_columns, panel, prop, target
from .queries import probed


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
