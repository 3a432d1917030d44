"""The prober table: prober name -> the module that implements it, imported on first use.

Each prober module defines `PROBER = Prober(parse_target=..., probe=...)` (prober_base.py). The
table names modules rather than importing them, so an exporter whose config has no email
module never loads the mail stack (it costs memory and start-up time).

Which probers there are, and what adding one touches: kinds.py (the kind table).
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from ..kinds import KINDS
from ..prober_base import Prober
from ..targets import check_common

PROBERS: dict[str, str] = {name: spec.prober_module for name, spec in KINDS.items()}


@cache
def get_prober(name: str) -> Prober[Any, Any]:
    """The prober called `name`, importing its module the first time it is asked for."""
    prober: Prober[Any, Any] = importlib.import_module(PROBERS[name], __name__).PROBER
    return prober


def accept_target(prober_name: str, target: str) -> object:
    """`target` as the prober reads it, or TargetError with the one reason config.yml (at
    load), the API and /probe all give: the rules of every target (check_common), then the
    prober's own. Empty is "missing" unless the prober takes it (email: the module's URL)."""
    prober = get_prober(prober_name)
    if target or not prober.accepts_empty_target:
        check_common(target)
    return prober.parse_target(target)
