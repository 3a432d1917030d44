"""Runs each scheduled monitor every interval, at its own phase, never two checks at once.

One task keeps a heap of due times, so 10,000 monitors cost one timer, not 10,000 sleeping
tasks. A monitor's ticks sit at `phase + k * interval` on the wall clock (identity.phase),
so they spread over the interval and keep their place across restarts. A tick that comes
while the monitor's previous check is still running (or still waiting for a slot among
`max_concurrency`) is skipped and counted: checks never pile up. Time comes from an injected
Clock (clock.py): the engine's reads the event loop, the tests' is virtual.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .clock import Clock
from .identity import phase
from .plan import CheckPlan

RunCheck = Callable[[CheckPlan], Awaitable[None]]


@dataclass(slots=True)
class Slot:
    """A monitor in the schedule; a new interval gets a new slot (old heap entries go stale)."""

    plan: CheckPlan
    generation: int
    task: asyncio.Task[None] | None = None
    """The check running or waiting for a slot; None between checks."""
    skipped: int = 0
    ticks: int = 0


@dataclass(slots=True)
class SchedulerStats:
    in_flight: int = 0
    skipped: int = 0


def first_due(monitor_id: str, interval: float, now: float) -> float:
    """The first tick at or after `now` (wall clock) of a monitor with this ID and interval."""
    offset = phase(monitor_id, interval)
    return offset + math.ceil((now - offset) / interval) * interval


class Scheduler:
    def __init__(
        self,
        run: RunCheck,
        max_concurrency: int,
        observe_lag: Callable[[float], None],
        clock: Clock,
    ) -> None:
        self._run = run
        self._clock = clock
        self._observe_lag = observe_lag
        """Gets each check's lag: seconds from its due time to its start."""
        self._slots: dict[str, Slot] = {}
        # (due, order, monitor ID, slot generation): numbers and a string only, so that the
        # garbage collector stops tracking the entries (10,000 of them at any time).
        self._heap: list[tuple[float, int, str, int]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(max_concurrency)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        """Every check in flight, those of monitors removed meanwhile included."""
        self.stats = SchedulerStats()

    def slot(self, monitor_id: str) -> Slot | None:
        return self._slots.get(monitor_id)

    def set_plan(self, monitor_id: str, plan: CheckPlan | None) -> None:
        """Schedule one monitor as `plan` says (None or disabled: not at all); the others are
        left as they are, so one change costs the same with 10 or 10,000 monitors. A monitor
        whose interval is unchanged keeps its slot, its place and its counters, and runs its
        new plan from its next tick; a new interval starts a new slot on the new tick grid."""
        old = self._slots.get(monitor_id)
        if plan is None or not plan.scheduled:
            if old is not None:
                del self._slots[monitor_id]  # a check already running finishes
            return
        if old is not None and old.plan.record.interval == plan.record.interval:
            # Same ticks: its next check runs the new plan. (Plans are not compared: a
            # reloaded module is a new object even when nothing in it changed.)
            old.plan = plan
            return
        slot = Slot(plan, next(self._order))
        if old is not None:
            slot.task, slot.skipped, slot.ticks = old.task, old.skipped, old.ticks
        self._slots[monitor_id] = slot
        now, wall_now = self._clock.now(), self._clock.wall()
        due = first_due(monitor_id, plan.record.interval, wall_now)
        entry = (now + (due - wall_now), next(self._order), monitor_id, slot.generation)
        heapq.heappush(self._heap, entry)
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sonde-scheduler")

    async def stop(self) -> None:
        """Stop ticking and cancel the checks in flight."""
        tasks = list(self._running)
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def _loop(self) -> None:
        clock, heap = self._clock, self._heap
        while True:
            self._wake.clear()
            if not heap:
                await self._wake.wait()
                continue
            due = heap[0][0]
            if due > clock.now():
                await clock.wait_until(due, self._wake)
                continue
            _, _, monitor_id, generation = heapq.heappop(heap)
            slot = self._slots.get(monitor_id)
            if slot is None or slot.generation != generation:
                continue  # removed or replaced since this tick was queued
            interval = slot.plan.record.interval
            now = clock.now()
            next_due = due + interval
            if next_due <= now:  # the loop was held up for a whole interval: count the gap
                missed = math.floor((now - due) / interval)
                slot.ticks += missed
                slot.skipped += missed
                self.stats.skipped += missed
                next_due = due + (missed + 1) * interval
            heapq.heappush(heap, (next_due, next(self._order), monitor_id, generation))
            slot.ticks += 1
            if slot.task is not None and not slot.task.done():
                slot.skipped += 1
                self.stats.skipped += 1
                continue
            slot.task = asyncio.create_task(self._check(slot, due), name=f"check {slot.plan.id}")
            self._running.add(slot.task)

    async def _check(self, slot: Slot, due: float) -> None:
        self.stats.in_flight += 1
        try:
            async with self._limit:
                self._observe_lag(self._clock.now() - due)
                await self._run(slot.plan)
        finally:
            self.stats.in_flight -= 1
            # A done task holds its coroutine and context: 10,000 of them would sit in the
            # collector's oldest generation, walked by every full collection. (The slot that
            # holds it may be a newer one, after a change of interval.)
            me = asyncio.current_task()
            self._running.discard(me)
            for owner in (slot, self._slots.get(slot.plan.id)):
                if owner is not None and owner.task is me:
                    owner.task = None
