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
import functools
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Config
from ..config.monitors import MonitorConfig
from ..logs import fields
from ..probing import Traceroutes
from ..storage import (
    Database,
    MonitorRecord,
    ResultRecord,
    StorageUnavailable,
    monitor_rows,
    result_rows,
)
from .check import run_check
from .clock import LoopClock
from .identity import config_monitor_id
from .plan import CheckPlan, PlanError, build_plan
from .samples import Samples, freeze
from .scheduler import Scheduler

logger = logging.getLogger("sonde_exporter.monitors")


def _ignore(_: float) -> None:
    pass


def _stored(
    conn: sqlite3.Connection,
) -> tuple[list[MonitorRecord], dict[str, ResultRecord]]:
    """Every monitor and its last result, read in one snapshot."""
    conn.execute("BEGIN")
    try:
        return monitor_rows.all_monitors(conn), result_rows.latest_results(conn)
    finally:
        conn.execute("COMMIT")


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
        database: Database,
        config: Config,
        *,
        scheduler: bool = True,
        max_concurrency: int = 64,
        retention: Retention | None = None,
        observe_lag: Callable[[float], None] = _ignore,
        traceroutes: Traceroutes | None = None,
    ) -> None:
        self.database = database
        self.traceroutes = traceroutes or Traceroutes()
        """The exporter's traceroute caches, shared with /probe."""
        self.config = config
        self.retention = retention or Retention()
        self.records: dict[str, MonitorRecord] = {}
        self.plans: dict[str, CheckPlan] = {}
        self.plan_errors: dict[str, str] = {}
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
        return self._loaded and self.database.available

    def unavailable_reason(self) -> str:
        """What a 503 may say: the database's path and OS error are in the log only (the
        answer may go to anyone who can reach /monitors/metrics or /status)."""
        if self.database.available:
            return "the monitors are loading"
        return "the database is not open (the log says why)"

    async def start(self) -> None:
        """Load and schedule the monitors; the database is open already (app.py opens it
        before and closes it after the engine)."""
        self.database.when_available(self._reload_soon)
        if self.database.available:
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
        if not self.database.available:
            self._replan()
            return
        async with self._lock:
            try:
                await self._sync_config()
            except StorageUnavailable as exc:
                logger.error("Cannot store the config's monitors", extra=fields(err=str(exc)))
            self._replan()

    # --- changes from the management API --------------------------------------------------

    async def save(self, record: MonitorRecord, *, new: bool) -> MonitorRecord:
        """Store a created or updated monitor, then schedule it as stored.

        The write is not under the lock, so concurrent saves share a commit; the lock
        only orders applying them against a (re)load, which holds it from its read to its
        apply. Commits resolve in queue order and the lock is FIFO, so two changes of one
        monitor are applied in the order they were written."""
        change = monitor_rows.insert_monitor if new else monitor_rows.update_monitor
        stored = await self.database.change(lambda conn: change(conn, record))
        async with self._lock:
            self.records[stored.id] = stored
            self._replan_one(stored.id)
        return stored

    async def delete(self, monitor_id: str) -> bool:
        """Delete a monitor with its whole history; False when there was none."""
        deleted = await self.database.change(
            lambda conn: monitor_rows.delete_monitor(conn, monitor_id)
        )
        async with self._lock:
            self.records.pop(monitor_id, None)
            self.states.pop(monitor_id, None)
            self._replan_one(monitor_id)
        return deleted

    async def results(
        self, monitor_id: str, limit: int, offset: int
    ) -> tuple[list[ResultRecord], int] | None:
        return await self.database.query(
            lambda conn: result_rows.results_page(conn, monitor_id, limit, offset)
        )

    # --- loading and planning ---------------------------------------------------------------

    def _reload_soon(self) -> None:
        self._tasks.append(asyncio.create_task(self._load(), name="sonde-monitors-load"))

    async def _load(self) -> None:
        async with self._lock:
            try:
                records, latest = await self.database.query(_stored)
                self.records = {r.id: r for r in records}
                for monitor_id, result in latest.items():
                    self.states.setdefault(monitor_id, MonitorState()).last = result
                await self._sync_config()
            except StorageUnavailable as exc:
                logger.error("Cannot load the monitors", extra=fields(err=str(exc)))
                return
            self._replan()
            self._loaded = True
            logger.info("Loaded the monitors", extra=fields(monitors=len(self.records)))

    async def _sync_config(self) -> None:
        now = time.time()
        wanted = [self._config_record(m, now) for m in self.config.monitors]
        kept, deleted = await self.database.change(
            lambda conn: monitor_rows.sync_config_monitors(conn, wanted)
        )
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

    def _replan(self) -> None:
        plans: dict[str, CheckPlan] = {}
        errors: dict[str, str] = {}
        for monitor_id, record in self.records.items():
            try:
                plans[monitor_id] = build_plan(record, self.config)
            except PlanError as exc:
                errors[monitor_id] = str(exc)
        for monitor_id, why in errors.items():
            if self.plan_errors.get(monitor_id) != why:
                logger.error(
                    "Monitor cannot run with this config",
                    extra=fields(monitor_id=monitor_id, err=why),
                )
        self.plans, self.plan_errors = plans, errors
        for monitor_id in plans:  # now, so that start-up's objects are frozen with them
            self.states.setdefault(monitor_id, MonitorState())
        self.scheduler.set_plans(plans)

    def _replan_one(self, monitor_id: str) -> None:
        """Re-plan one saved or deleted monitor: an API change costs the same with 10 or
        10,000 monitors (the others' plans are unchanged)."""
        self.plans.pop(monitor_id, None)
        self.plan_errors.pop(monitor_id, None)
        record = self.records.get(monitor_id)
        if record is not None:
            try:
                self.plans[monitor_id] = build_plan(record, self.config)
            except PlanError as exc:
                self.plan_errors[monitor_id] = str(exc)
        if monitor_id in self.plans:
            self.states.setdefault(monitor_id, MonitorState())
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
        written = self.database.change_soon(
            lambda conn: result_rows.insert_result(conn, run.result)
        )
        written.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[object]) -> None:
        exc = future.exception()
        if isinstance(exc, StorageUnavailable):
            self.dropped_results += 1

    async def _prune_loop(self) -> None:
        keep = self.retention
        while True:
            await asyncio.sleep(keep.prune_every)
            if not self.database.available:
                continue
            step = functools.partial(
                result_rows.prune,
                older_than=time.time() - keep.max_age,
                keep_per_monitor=keep.max_results,
                limit=keep.prune_step,
            )
            deleted = keep.prune_step
            while deleted >= keep.prune_step:  # small steps: checks are written in between
                try:
                    deleted = await self.database.change(step)
                except StorageUnavailable:
                    break
