"""Keeping what lives long (modules, plans, monitors) out of the cyclic garbage collector's
full passes, which walk every tracked object while the event loop waits.

A full pass over 10,000 monitors' plans and records takes tens of milliseconds: every check
due meanwhile starts late (the scheduling lag's tail). Frozen, those objects are no longer
walked; they are still freed by reference counting when dropped. What a freeze catches while
it is cyclic garbage stays until the process ends, so freezes are rare: at start-up and after
every SETTLE_AFTER monitors planned (a reload, API changes).
"""

from __future__ import annotations

import gc

SETTLE_AFTER = 500
"""Monitors planned (created, changed, re-planned) between two settles."""


def settle() -> None:
    """Collect what is garbage now, then freeze everything still alive."""
    gc.collect()
    gc.freeze()


class Settler:
    """Counts monitors planned and settles once SETTLE_AFTER were, at the caller's pace."""

    __slots__ = ("_planned",)

    def __init__(self) -> None:
        self._planned = 0

    def planned(self) -> None:
        self._planned += 1

    def settle_if_due(self) -> None:
        if self._planned >= SETTLE_AFTER:
            self._planned = 0
            settle()
