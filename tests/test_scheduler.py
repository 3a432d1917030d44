"""The scheduler on virtual time (fake_clock.py): phases, intervals, skipped and missed ticks,
re-planning, reload, the concurrency bound and shutdown, each exact to the tick and run in
milliseconds. The checks are stand-ins that take a set time of virtual time; the real clock,
real checks and the database are covered end to end in test_monitors_schedule.py and
test_monitors_limits.py."""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable

import pytest
from fake_clock import FakeClock
from monitor_tools import monitors_yaml, tcp_id

from sonde_exporter.config.loader import parse_config
from sonde_exporter.monitors.identity import phase
from sonde_exporter.monitors.plan import CheckPlan, Planner
from sonde_exporter.monitors.scheduler import Scheduler
from sonde_exporter.storage import MonitorRecord
from sonde_exporter.storage.secrets import PasswordKey

CONFIG = parse_config(monitors_yaml(), "config.yml")
EXACT = 1e-6
"""Virtual time is exact but for float rounding of wall times near 1.7e9 (about 2e-7)."""


def plan(name: str, interval: float, *, target: str = "127.0.0.1:9", status: str = "active"):  # type: ignore[no-untyped-def]
    record = MonitorRecord(
        id=tcp_id(name),
        kind="tcp",
        source="config",
        name=name,
        module="tcp",
        target=target,
        interval=interval,
        timeout=None,
        status=status,
        created_at=0.0,
        updated_at=0.0,
    )
    return Planner(PasswordKey(None)).plan(record, CONFIG)


def ticks(name: str, interval: float, start: float, end: float) -> list[float]:
    """The wall-clock ticks of a monitor in [start, end]: phase + k * interval."""
    offset = phase(tcp_id(name), interval)
    first, last = math.ceil((start - offset) / interval), math.floor((end - offset) / interval)
    return [offset + k * interval for k in range(first, last + 1)]


class Harness:
    """A scheduler on a fake clock whose checks record their start and take `durations`."""

    def __init__(self, max_concurrency: int = 64, wall: float = 1_700_000_000.0) -> None:
        self.clock = FakeClock(wall=wall)
        self.lags: list[float] = []
        self.scheduler = Scheduler(self._run, max_concurrency, self.lags.append, self.clock)
        self.starts: dict[str, list[float]] = defaultdict(list)
        """Wall time of each check's start, by monitor name."""
        self.ran: list[CheckPlan] = []
        self.durations: dict[str, float] = {}
        self.running: set[str] = set()
        self.most_running = 0
        self.most_in_flight = 0
        self.scheduled: set[str] = set()
        self.cancelled: list[str] = []
        self.finished: list[str] = []

    async def _run(self, check: CheckPlan) -> None:
        name = check.record.name
        self.starts[name].append(self.clock.wall())
        self.ran.append(check)
        self.running.add(name)
        self.most_running = max(self.most_running, len(self.running))
        self.most_in_flight = max(self.most_in_flight, self.scheduler.stats.in_flight)
        try:
            await self.clock.sleep(self.durations.get(name, 0.0))
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running.discard(name)
        self.finished.append(name)

    def schedule(self, *plans: CheckPlan) -> None:
        """As the engine applies a reload: each plan set, each monitor gone unset."""
        wanted = {p.id: p for p in plans}
        for monitor_id in [m for m in self.scheduled if m not in wanted]:
            self.scheduler.set_plan(monitor_id, None)
        for monitor_id, p in wanted.items():
            self.scheduler.set_plan(monitor_id, p)
        self.scheduled = set(wanted)

    def slot(self, name: str):  # type: ignore[no-untyped-def]
        return self.scheduler.slot(tcp_id(name))


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    h.scheduler.start()
    yield h
    await h.scheduler.stop()


def assert_times(got: Iterable[float], want: Iterable[float]) -> None:
    assert list(got) == pytest.approx(list(want), abs=EXACT)


@pytest.mark.parametrize("started", [1_700_000_000.0, 1_700_012_345.678])
async def test_each_monitor_runs_at_its_phase_every_interval(started: float) -> None:
    """Every tick of every monitor runs once, on time, at phase(ID) + k * interval on the wall
    clock: from whatever moment the scheduler starts (a restart keeps the monitor's place)."""
    h = Harness(wall=started)
    h.scheduler.start()
    intervals = {"fast": 1.0, "ten": 10.0, "minute": 60.0, "odd": 7.5}
    h.schedule(*(plan(name, every) for name, every in intervals.items()))
    await h.clock.advance(300)
    await h.scheduler.stop()
    for name, every in intervals.items():
        assert_times(h.starts[name], ticks(name, every, started, started + 300))
        slot = h.slot(name)
        assert slot.ticks == len(h.starts[name]) and slot.skipped == 0
    assert len(h.starts["fast"]) in (300, 301)
    assert h.lags == [0.0] * len(h.lags) and len(h.lags) == sum(map(len, h.starts.values()))


def test_phases_spread_monitors_over_their_interval() -> None:
    """1,000 monitors at 60s: their phases (from the hash of each ID) fill the minute evenly,
    so they do not all fire at once. (Hashes are fixed: these bounds cannot flake.)"""
    phases = [phase(tcp_id(f"m{i}"), 60.0) for i in range(1000)]
    assert all(0 <= p < 60 for p in phases)
    per_6s = Counter(int(p // 6) for p in phases)
    assert len(per_6s) == 10 and 70 <= min(per_6s.values()) <= max(per_6s.values()) <= 130
    assert phase(tcp_id("m1"), 60.0) != phase(tcp_id("m1"), 30.0)  # the interval matters


async def test_a_tick_while_the_check_still_runs_is_skipped_and_counted(harness: Harness) -> None:
    """A check of 2.5s at a 1s interval: the two ticks that find it running are skipped and
    counted, never queued; the third runs."""
    h = harness
    start = h.clock.wall()
    h.durations["slow"] = 2.5
    h.schedule(plan("slow", 1.0))
    await h.clock.advance(10)
    due = ticks("slow", 1.0, start, start + 10)
    assert_times(h.starts["slow"], due[::3])
    slot = h.slot("slow")
    assert slot.ticks == len(due)
    assert slot.skipped == h.scheduler.stats.skipped == len(due) - len(due[::3])
    assert h.lags == [0.0] * len(due[::3])
    assert h.scheduler.stats.in_flight == (1 if "slow" in h.running else 0)


async def test_ticks_missed_by_a_held_up_loop_are_counted(harness: Harness) -> None:
    """An event loop held up 3.5s by something else: the overdue tick runs as soon as it can
    (its lag says how late), the ticks wholly missed meanwhile are counted as skipped, and
    the monitor goes on on its own grid, not shifted."""
    h = harness
    start = h.clock.wall()
    h.schedule(plan("m", 1.0))
    await h.clock.advance(1)
    [first] = h.starts["m"]
    h.clock.hold(3.5)
    await h.clock.advance(0)
    late = h.clock.wall() - (first + 1)
    missed = math.floor(late)
    assert 2 <= missed <= 3  # the first tick is in [start, start + 1)
    assert h.lags[-1] == pytest.approx(late, abs=EXACT)
    assert h.starts["m"][-1] == pytest.approx(h.clock.wall(), abs=EXACT)
    assert h.slot("m").skipped == h.scheduler.stats.skipped == missed
    await h.clock.advance(5)
    on_grid = ticks("m", 1.0, first + 1 + missed + 1, start + 9.5)
    assert_times(h.starts["m"][2:], on_grid)
    assert h.slot("m").ticks == 2 + missed + len(on_grid)


async def test_replanning_one_monitor_keeps_the_others_slots(harness: Harness) -> None:
    """A new interval puts that monitor on its new grid from the next tick; a new plan with
    the same interval (a changed target) keeps its slot and runs from its next tick; the
    other monitors are not touched: same slots, no tick lost or doubled."""
    h = harness
    start = h.clock.wall()
    h.schedule(plan("a", 10.0), plan("b", 10.0), plan("c", 10.0))
    await h.clock.advance(30)
    slots = {name: h.slot(name) for name in "abc"}
    changed, ran_before = h.clock.wall(), len(h.ran)
    h.scheduler.set_plan(tcp_id("b"), plan("b", 20.0))
    retargeted = plan("a", 10.0, target="127.0.0.2:9")
    h.scheduler.set_plan(tcp_id("a"), retargeted)
    assert h.slot("b") is not slots["b"] and h.slot("b").plan.record.interval == 20.0
    assert h.slot("a") is slots["a"] and h.slot("a").plan is retargeted
    assert h.slot("c") is slots["c"]
    await h.clock.advance(60)
    end = h.clock.wall()
    for name in "ac":
        assert_times(h.starts[name], ticks(name, 10.0, start, end))
    b_before = ticks("b", 10.0, start, changed)
    assert_times(h.starts["b"], b_before + ticks("b", 20.0, changed, end))
    after = [p.record.target for p in h.ran[ran_before:] if p.record.name == "a"]
    assert after == ["127.0.0.2:9"] * 6
    assert h.slot("c").ticks == len(h.starts["c"])


async def test_reload_adds_removes_and_keeps(harness: Harness) -> None:
    """A reload: a kept monitor keeps its slot; a removed one is not checked
    again, though a check of it already running finishes; a disabled one is not scheduled;
    a new one starts at its first tick after the reload."""
    h = harness
    start = h.clock.wall()
    h.durations["gone"] = 100.0
    h.schedule(plan("kept", 10.0), plan("gone", 10.0))
    await h.clock.advance(25)
    kept = h.slot("kept")
    assert "gone" in h.running
    reloaded = h.clock.wall()
    h.schedule(plan("kept", 10.0), plan("new", 10.0), plan("off", 10.0, status="disabled"))
    assert h.slot("kept") is kept and h.slot("gone") is None and h.slot("off") is None
    await h.clock.advance(120)
    end = h.clock.wall()
    assert_times(h.starts["kept"], ticks("kept", 10.0, start, end))
    assert_times(h.starts["new"], ticks("new", 10.0, reloaded, end))
    assert len(h.starts["gone"]) == 1 and "gone" in h.finished and not h.cancelled
    assert "off" not in h.starts


async def test_max_concurrency_bounds_checks_and_lag_counts_the_wait() -> None:
    """Five 40s checks, two slots: never more than two run; the others wait their turn (in
    flight meanwhile) in the order their ticks came, and the lag of each is its wait."""
    h = Harness(max_concurrency=2)
    h.scheduler.start()
    names = [f"m{i}" for i in range(5)]
    h.durations = dict.fromkeys(names, 40.0)
    start = h.clock.wall()
    h.schedule(*(plan(name, 60.0) for name in names))
    await h.clock.advance(200)
    await h.scheduler.stop()
    assert h.most_running == 2 and h.most_in_flight >= 3
    # The first round, simulated: each tick starts when it comes or when a slot frees.
    first = sorted((ticks(name, 60.0, start, start + 60)[0], name) for name in names)
    free = [start, start]
    expected: dict[str, float] = {}
    for due, name in first:
        expected[name] = max(due, heapq.heappop(free))
        heapq.heappush(free, expected[name] + 40.0)
    for name in names:
        assert h.starts[name][0] == pytest.approx(expected[name], abs=EXACT)
    waits = sorted(expected[name] - due for due, name in first)
    assert sorted(h.lags[:5]) == pytest.approx(waits, abs=EXACT)
    assert waits[-1] > 0  # some did wait: the bound was in play


async def test_stop_cancels_checks_in_flight(harness: Harness) -> None:
    h = harness
    h.durations = {"a": 1000.0, "b": 1000.0}
    h.schedule(plan("a", 10.0), plan("b", 10.0), plan("c", 10.0))
    await h.clock.advance(10)
    assert h.running == {"a", "b"} and h.scheduler.stats.in_flight == 2
    await h.scheduler.stop()
    assert sorted(h.cancelled) == ["a", "b"] and h.scheduler.stats.in_flight == 0
    assert h.slot("a").task is None
    count = sum(map(len, h.starts.values()))
    await h.clock.advance(60)
    assert sum(map(len, h.starts.values())) == count  # no tick after the stop
