"""Re-planning on a reload: only what changed, and never in one block of the event loop.

A real engine on a real SQLite file; monitors are saved through the engine as the management
API saves them, a reload is `apply_config` with a config parsed again from its text, as
SIGHUP does. The scheduler is not started: its slots are read, nothing is probed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tcpservers import Pki
from test_tls_contexts import PRIVATE_CA

from sonde_exporter.config import Config, load_config, parse_config
from sonde_exporter.monitors.engine import MonitorEngine
from sonde_exporter.monitors.identity import new_monitor_id
from sonde_exporter.monitors.plan import stale_modules
from sonde_exporter.storage import MonitorRecord
from sonde_exporter.storage.sqlite_store import SqliteStore

CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 1s
  tcp_other:
    prober: tcp
    timeout: 1s
monitors:
  - {name: config-one, module: tcp, target: "127.0.0.1:9", interval: 60s}
  - {name: config-two, module: tcp_other, target: "127.0.0.2:9", interval: 60s}
"""


OTHER_SLOWER = CONFIG.replace(
    "tcp_other:\n    prober: tcp\n    timeout: 1s", "tcp_other:\n    prober: tcp\n    timeout: 2s"
)
assert OTHER_SLOWER != CONFIG


def config(text: str = CONFIG) -> Config:
    """A fresh parse each time, as a reload reads the file again: new, equal objects."""
    return parse_config(text, "config.yml")


def record(n: int, module: str) -> MonitorRecord:
    """An API monitor with its own target and its own policy, so its module is its own."""
    now = time.time()
    return MonitorRecord(
        id=new_monitor_id("tcp"),
        kind="tcp",
        source="api",
        name=f"m{n}",
        module=module,
        target=f"127.0.{n >> 8 & 255}.{n & 255}:{1024 + n}",
        interval=60.0,
        timeout=None,
        status="active",
        created_at=now,
        updated_at=now,
        spec={"degradedResponseTimeMs": 100 + n},
    )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[MonitorEngine]:
    store = SqliteStore(str(tmp_path / "sonde.db"))
    await store.start()  # as app.py does: the store opens before the engine starts
    engine = MonitorEngine(store, config(), scheduler=False)
    await engine.start()
    assert engine.ready
    yield engine
    await engine.stop()
    await store.close()


async def save_many(engine: MonitorEngine, count: int) -> None:
    """Half on each module, saved concurrently (they share commits)."""
    modules = ("tcp", "tcp_other")
    await asyncio.gather(*(engine.save(record(n, modules[n % 2]), new=True) for n in range(count)))


async def test_a_reload_with_nothing_changed_keeps_every_plan(engine: MonitorEngine) -> None:
    await save_many(engine, 20)
    plans = dict(engine.plans)
    slots = {m: engine.scheduler.slot(m) for m in plans}
    assert len(plans) == 22 and not engine.plan_errors

    await engine.apply_config(config())

    assert engine.plans.keys() == plans.keys()
    kept = [m for m, plan in engine.plans.items() if plan is plans[m]]
    assert len(kept) == len(plans), "an unchanged monitor was planned again"
    assert all(engine.scheduler.slot(m) is slots[m] for m in plans)


async def test_a_changed_module_replans_exactly_its_monitors(engine: MonitorEngine) -> None:
    await save_many(engine, 20)
    plans = dict(engine.plans)

    await engine.apply_config(config(OTHER_SLOWER))

    for monitor_id, plan in engine.plans.items():
        if plan.record.module == "tcp_other":
            assert plan is not plans[monitor_id]
            assert plan.module.timeout == 2.0 and plan.timeout == 2.0
        else:
            assert plan is plans[monitor_id], plan.record.name
            assert plan.module.timeout == 1.0
    assert len(engine.plans) == 22


async def test_a_removed_module_leaves_its_monitors_unplanned(engine: MonitorEngine) -> None:
    await save_many(engine, 4)
    without = CONFIG.replace("  tcp_other:\n    prober: tcp\n    timeout: 1s\n", "").replace(
        '  - {name: config-two, module: tcp_other, target: "127.0.0.2:9", interval: 60s}\n', ""
    )

    await engine.apply_config(config(without))

    assert {p.record.module for p in engine.plans.values()} == {"tcp"}
    assert sorted(engine.records[m].name for m in engine.plan_errors) == ["m1", "m3"]
    assert all(engine.scheduler.slot(m) is None for m in engine.plan_errors)

    await engine.apply_config(config())  # back: planned again

    assert not engine.plan_errors and len(engine.plans) == 6


async def test_the_loop_runs_while_many_monitors_are_replanned(engine: MonitorEngine) -> None:
    """What keeps /-/healthy and the checks answering during a reload: re-planning yields
    to the loop between slices, so a task on the loop sees it half done."""
    await save_many(engine, 1500)
    changed = [m for m, p in engine.plans.items() if p.record.module == "tcp_other"]
    before = {m: engine.plans[m] for m in changed}
    seen: list[int] = []
    gaps: list[float] = []

    async def watch() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            seen.append(sum(engine.plans.get(m) is not before[m] for m in changed))

    watcher = asyncio.create_task(watch())
    await engine.apply_config(config(OTHER_SLOWER))
    watcher.cancel()

    # 750 monitors, each validating its own module, take far more than one 5 ms slice on any
    # machine, so the watcher runs while some are re-planned and others not yet.
    assert any(0 < n < len(changed) for n in seen), "the re-plan never yielded to the loop"
    # A slice is 5 ms; 1 s leaves room for a loaded 2-core box preempting the process, and
    # is still well below the seconds the loop was held before with 10,000 monitors.
    assert max(gaps) < 1.0
    assert all(engine.plans[m] is not before[m] for m in changed)


def test_a_rotated_ca_file_replans_the_monitors_of_its_modules_only(tmp_path: Path) -> None:
    """Equal settings are not enough: a module keeps the TLS context it got, so a reload
    after a certificate rotation must give its monitors new plans (with the new context)."""
    pki = Pki.create(tmp_path)
    path = tmp_path / "config.yml"
    path.write_text(CONFIG.split("monitors:")[0] + PRIVATE_CA)
    old = load_config(path)
    assert stale_modules(old, load_config(path)) == set()
    pki.ca.cert_pem.write_to_path(tmp_path / "new.pem")
    (tmp_path / "new.pem").replace(tmp_path / "ca.pem")
    assert stale_modules(old, load_config(path)) == {"private"}
