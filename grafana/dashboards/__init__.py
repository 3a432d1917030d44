"""Generator of grafana/dashboard.json, one module per concept: queries (PromQL selectors and
relabeling), panels and tables (the panel vocabulary), one module per group of rows, and
layout (the rows in order and the dashboard around them)."""

from .layout import render

__all__ = ["render"]
