"""The monitors in force: stored in the database, planned against the config, scheduled.

The database is the source of truth; the engine keeps in memory what the hot paths read
(plans, each monitor's last check) and writes every change through before applying it, so
what a caller was told happened is on disk. Config monitors are synced into the database at
start and on every reload: new ones are added, changed ones updated in place (their ID and
history stay), removed ones deleted with their history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..collector import Settler
from ..config import Config
from ..config.monitors import MonitorConfig
from ..logs import fields
from ..probing import Traceroutes
from ..storage import MonitorRecord, MonitorStore, ResultRecord, StorageUnavailable
from ..storage.secrets import PasswordKey
from .check import run_check
from .clock import LoopClock
from .identity import config_monitor_id
from .plan import CheckPlan, PlanError, Planner, stale_modules
from .samples import Samples, freeze
from .scheduler import Scheduler

logger = logging.getLogger("sonde_exporter.monitors")


REPLAN_SLICE = 0.005
"""Seconds of planning between two yields to the event loop during a (re)load."""


def _ignore(_: float) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history to keep: by age, and by count per monitor."""

    max_age: float = 31 * 86400.0
    max_results: int = 50_000
    prune_every: float = 60.0
    prune_step: int = 5_000


@dataclass(slots=True)
class MonitorState:
    """What the engine remembers of a monitor between checks."""

    last: ResultRecord | None = None
    metrics: Samples | None = None
    """The last check's probe metrics (None after a restart, until the next check)."""
    checks: Counter[str] = field(default_factory=Counter)
    attempts: int = 0


class MonitorEngine:
    def __init__(
        self,
        store: MonitorStore,
        config: Config,
        *,
        scheduler: bool = True,
        max_concurrency: int = 64,
        retention: Retention | None = None,
        observe_lag: Callable[[float], None] = _ignore,
        traceroutes: Traceroutes | None = None,
        passwords: PasswordKey | None = None,
    ) -> None:
        self.store = store
        self._settler = Settler()
        self.planner = Planner(passwords or PasswordKey(store.key_file))
        """Builds the plans; its password key (the database's, by default) is loaded by the
        composition root (app.py) before start() plans, and seals the API's passwords."""
        self.traceroutes = traceroutes or Traceroutes()
        """The exporter's traceroute caches, shared with /probe."""
        self.config = config
        self.retention = retention or Retention()
        self.records: dict[str, MonitorRecord] = {}
        self.plans: dict[str, CheckPlan] = {}
        self.plan_errors: dict[str, str] = {}
        self._planned_config: Config | None = None
        """The config the plans were built against (re-planning compares its modules)."""
        self.states: dict[str, MonitorState] = {}
        self.dropped_results = 0
        self.scheduler_enabled = scheduler
        self.scheduler = Scheduler(self._check, max_concurrency, observe_lag, LoopClock())
        self._loaded = False
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        """Whether the monitor features can answer (the database is open and loaded)."""
        return self._loaded and self.store.available

    def unavailable_reason(self) -> str:
        """What a 503 may say: the database's path and OS error are in the log only (the
        answer may go to anyone who can reach /monitors/metrics or /status)."""
        if self.store.available:
            return "the monitors are loading"
        return "the database is not open (the log says why)"

    async def start(self) -> None:
        """Load and schedule the monitors; the database is open already (app.py opens it
        before and closes it after the engine)."""
        self.store.when_available(self._reload_soon)
        if self.store.available:
            await self._load()
        if self.scheduler_enabled:
            self.scheduler.start()
        self._tasks.append(asyncio.create_task(self._prune_loop(), name="sonde-prune"))

    async def stop(self) -> None:
        """Cancel the checks in flight and the pruning; the database stays open, so the
        results of the checks that finished are still written."""
        await self.scheduler.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def apply_config(self, config: Config) -> None:
        """Put a reloaded config in force: sync its monitors, re-plan every monitor."""
        self.config = config
        if not self.store.available:
            await self._replan()
            return
        async with self._lock:
            try:
                await self._sync_config()
            except StorageUnavailable as exc:
                logger.error("Cannot store the config's monitors", extra=fields(err=str(exc)))
            await self._replan()

    # --- changes from the management API --------------------------------------------------

    async def save(self, record: MonitorRecord, *, new: bool) -> MonitorRecord:
        """Store a created or updated monitor, then schedule it as stored.

        The write is not under the lock, so concurrent saves share a commit; the lock
        only orders applying them against a (re)load, which holds it from its read to its
        apply. Commits resolve in queue order and the lock is FIFO, so two changes of one
        monitor are applied in the order they were written."""
        stored = await self.store.save_monitor(record, new=new)
        async with self._lock:
            self.records[stored.id] = stored
            self._replan_one(stored.id)
        self._settler.settle_if_due()
        return stored

    async def delete(self, monitor_id: str) -> bool:
        """Delete a monitor with its whole history; False when there was none."""
        deleted = await self.store.delete_monitor(monitor_id)
        async with self._lock:
            self.records.pop(monitor_id, None)
            self.states.pop(monitor_id, None)
            self._replan_one(monitor_id)
        return deleted

    async def results(
        self, monitor_id: str, limit: int, offset: int
    ) -> tuple[list[ResultRecord], int] | None:
        return await self.store.page_results(monitor_id, limit, offset)

    # --- loading and planning ---------------------------------------------------------------

    def _reload_soon(self) -> None:
        self._tasks.append(asyncio.create_task(self._load(), name="sonde-monitors-load"))

    async def _load(self) -> None:
        async with self._lock:
            try:
                records, latest = await self.store.load()
                self.records = {r.id: r for r in records}
                for monitor_id, result in latest.items():
                    self.states.setdefault(monitor_id, MonitorState()).last = result
                await self._sync_config()
            except StorageUnavailable as exc:
                logger.error("Cannot load the monitors", extra=fields(err=str(exc)))
                return
            await self._replan()
            self._loaded = True
            logger.info("Loaded the monitors", extra=fields(monitors=len(self.records)))

    async def _sync_config(self) -> None:
        now = time.time()
        wanted = [self._config_record(m, now) for m in self.config.monitors]
        kept, deleted = await self.store.sync_config(wanted)
        for monitor_id in deleted:
            self.records.pop(monitor_id, None)
            self.states.pop(monitor_id, None)
        self.records.update((r.id, r) for r in kept)

    def _config_record(self, monitor: MonitorConfig, now: float) -> MonitorRecord:
        kind = self.config.modules[monitor.module].prober
        return MonitorRecord(
            id=config_monitor_id(kind, monitor.name),
            kind=kind,
            source="config",
            name=monitor.name,
            module=monitor.module,
            target=monitor.target,
            interval=monitor.interval,
            timeout=monitor.timeout,
            status=monitor.status,
            created_at=now,
            updated_at=now,
            labels=dict(monitor.labels),
        )

    async def _replan(self) -> None:
        """Re-plan what changed since the last plan (new, removed, edited monitors; monitors
        of a module the config changed; monitors that could not run), in slices of at most
        REPLAN_SLICE seconds of the loop: a reload of 10,000 unchanged monitors re-plans
        none, keeps their plan objects and slots, and never holds up probes or /-/healthy."""
        stale = stale_modules(self._planned_config, self.config)
        self._planned_config = self.config
        todo = [m for m in [*self.plans, *self.plan_errors] if m not in self.records]
        for monitor_id, record in self.records.items():
            plan = self.plans.get(monitor_id)
            if (
                plan is None
                or stale is None
                or record.module in stale
                or (plan.record is not record and plan.record != record)
            ):
                todo.append(monitor_id)
        until = time.perf_counter() + REPLAN_SLICE
        for monitor_id in todo:
            self._replan_one(monitor_id)
            if time.perf_counter() > until:
                await asyncio.sleep(0)  # the lock is held: API changes wait, checks do not
                until = time.perf_counter() + REPLAN_SLICE
        self._settler.settle_if_due()

    def _replan_one(self, monitor_id: str) -> None:
        """Re-plan one saved, deleted or changed monitor: an API change costs the same with
        10 or 10,000 monitors (the others' plans are unchanged)."""
        self.plans.pop(monitor_id, None)
        failed = self.plan_errors.pop(monitor_id, None)
        record = self.records.get(monitor_id)
        if record is not None:
            try:
                self.plans[monitor_id] = self.planner.plan(record, self.config)
            except PlanError as exc:
                why = self.plan_errors[monitor_id] = str(exc)
                if why != failed:
                    logger.error(
                        "Monitor cannot run with this config",
                        extra=fields(monitor_id=monitor_id, err=why),
                    )
        if monitor_id in self.plans:  # now, so that start-up's objects are frozen with them
            self.states.setdefault(monitor_id, MonitorState())
            self._settler.planned()
        self.scheduler.set_plan(monitor_id, self.plans.get(monitor_id))

    # --- checks and history -----------------------------------------------------------------

    async def _check(self, plan: CheckPlan) -> None:
        run = await run_check(plan, self.traceroutes)
        if self.plans.get(plan.id) is None:  # deleted while it ran
            return
        state = self.states.setdefault(plan.id, MonitorState())
        state.last, state.metrics = run.result, freeze(run.metrics)
        state.checks[run.result.status] += 1
        state.attempts += run.result.attempts
        self.store.add_result(run.result).add_done_callback(self._written)

    def _written(self, future: asyncio.Future[ResultRecord]) -> None:
        exc = future.exception()
        if isinstance(exc, StorageUnavailable):
            self.dropped_results += 1

    async def _prune_loop(self) -> None:
        keep = self.retention
        while True:
            await asyncio.sleep(keep.prune_every)
            if not self.store.available:
                continue
            older_than = time.time() - keep.max_age
            deleted = keep.prune_step
            while deleted >= keep.prune_step:  # small steps: checks are written in between
                try:
                    deleted = await self.store.prune(older_than, keep.max_results, keep.prune_step)
                except StorageUnavailable:
                    break
