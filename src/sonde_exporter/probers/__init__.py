"""The prober table: prober name -> the module that implements it, imported on first use.

Each prober module defines `PROBER = Prober(parse_target=..., probe=...)` (prober_base.py). The
table names modules rather than importing them, so an exporter whose config has no email
module never loads the mail stack (it costs memory and start-up time).

Adding a prober touches:
1. a module in this package with its `PROBER` and its `ProbeGauge`s;
2. one row in `PROBERS` below;
3. its name in `config.ProberName` and its settings block as a field of `config.Module`;
4. its target parser in `targets.py` when the existing ones do not fit;
5. for the probe policies: its assertion sources in `config.policies.SOURCES`, and
   `ctx.observe(response_time=..., <source>=...)` where it measures them;
6. a dashboard panel for each of its gauges (grafana/dashboard.py; a test checks);
7. the README (prober section, metrics table) and a test module `tests/test_<name>.py`.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from ..prober_base import Prober

PROBERS: dict[str, str] = {
    "tcp": ".tcp",
    "icmp": ".icmp",
    "email": ".email.probe",
}


@cache
def get_prober(name: str) -> Prober[Any, Any]:
    """The prober called `name`, importing its module the first time it is asked for."""
    prober: Prober[Any, Any] = importlib.import_module(PROBERS[name], __name__).PROBER
    return prober
