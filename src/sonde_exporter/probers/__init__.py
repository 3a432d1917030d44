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

PROBERS: dict[str, str] = {name: spec.prober_module for name, spec in KINDS.items()}


@cache
def get_prober(name: str) -> Prober[Any, Any]:
    """The prober called `name`, importing its module the first time it is asked for."""
    prober: Prober[Any, Any] = importlib.import_module(PROBERS[name], __name__).PROBER
    return prober
