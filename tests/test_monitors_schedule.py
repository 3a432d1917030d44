"""Scheduled monitors from config.yml, run by an exporter in this process against loopback
targets, with their results in a real SQLite file: intervals, states, reloads, restarts.

Timing bounds are loose on purpose (a loaded 2-core box can hold the event loop up for
hundreds of milliseconds); the tight figures (lag p99, CPU per check) are measured in bench/.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from helpers import parse_metrics, promtool_check
from monitor_tools import (
    monitors_yaml,
    result_count,
    sd_groups,
    stored_monitors,
    stored_results,
    tcp_id,
    until,
)

from sonde_exporter.monitors.identity import phase
from sonde_exporter.monitors.options import MonitorOptions

LAG_BOUND = 0.5
"""Most seconds a check may start after its tick here: generous for a loaded 2-core box
(bench/ measures the real p99, a few milliseconds)."""


async def accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def options(db: Path, **kw: object) -> MonitorOptions:
    return MonitorOptions(storage_path=str(db), **kw)  # type: ignore[arg-type]


async def monitors_metrics(client) -> dict[str, float]:  # type: ignore[no-untyped-def]
    response = await client.get("/monitors/metrics")
    text = await response.text()
    assert response.status == 200, text
    return parse_metrics(text)


async def test_config_monitors_run_on_their_ticks_on_the_real_clock(
    exporter_client, tcp_server, tmp_path
):
    """The engine's real clock (the event loop's time, ticks aligned on the wall clock): each
    check starts on its own tick, a little late at most, and its lag reaches /metrics. The
    scheduler's logic (phases, intervals, skips, re-planning) is tested exactly on virtual
    time in test_scheduler.py; this proves the wiring to real time."""
    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    db = tmp_path / "sonde.db"
    config = monitors_yaml(f"{{name: fast, module: tcp, target: '{target}', interval: 1s}}")
    client = await exporter_client(config, monitors=options(db))
    monitor_id = tcp_id("fast")
    await until("3 results", lambda: result_count(db, monitor_id) >= 3, 10)
    lag = parse_metrics(await (await client.get("/metrics")).text())
    await client.close()  # results are written before the database closes

    results = stored_results(db, monitor_id)
    assert {status for *_, status in results} == {"up"}
    # Each check starts on its own tick (phase + k * interval), at most LAG_BOUND late, and
    # no tick runs twice.
    offset = phase(monitor_id, 1.0)
    ticks = [round(at - offset) for _, _, at, _ in results]
    lags = [at - (offset + k) for k, (_, _, at, _) in zip(ticks, results, strict=True)]
    assert all(-0.01 <= lag < LAG_BOUND for lag in lags), lags
    assert len(set(ticks)) == len(ticks)
    # Every check started was observed in the lag histogram, each under LAG_BOUND.
    count = lag["sonde_monitor_scheduling_lag_seconds_count"]
    assert count >= 3
    assert lag[f'sonde_monitor_scheduling_lag_seconds_bucket{{le="{LAG_BOUND}"}}'] == count


async def test_states_decide_what_is_checked(exporter_client, tcp_server, tmp_path):
    """active and maintenance are checked and stored; disabled, paused and inactive (stored as
    disabled) are not, and /v1/sd leaves them out."""
    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    db = tmp_path / "sonde.db"
    names = {"live": "active", "works": "maintenance", "stopped": "disabled"}
    names |= {"paused": "paused", "inactive": "inactive"}
    config = monitors_yaml(
        *(
            f"{{name: {name}, module: tcp, target: '{target}', interval: 1s, status: {status}}}"
            for name, status in names.items()
        )
    )
    client = await exporter_client(config, monitors=options(db))
    checked = {tcp_id("live"), tcp_id("works")}
    await until(
        "2 results of each checked monitor",
        lambda: all(result_count(db, m) >= 2 for m in checked),
    )
    stored = stored_monitors(db)
    assert {name: status for name, status, _ in stored.values()} == {
        "live": "active",
        "works": "maintenance",
        "stopped": "disabled",
        "paused": "disabled",
        "inactive": "disabled",
    }
    assert {m for _, m, _, _ in stored_results(db)} == checked

    response = await client.get("/monitors/metrics")
    text = await response.text()
    promtool_check(text)
    metrics = parse_metrics(text)
    for name, status in names.items():
        state = "disabled" if status in ("paused", "inactive") else status
        key = (
            f'sonde_monitor_state{{module="tcp",monitor="{name}",monitor_id="{tcp_id(name)}",'
            f'state="{state}",target="{target}"}}'
        )
        assert metrics[key] == 1, key
    success = {k for k, v in metrics.items() if k.startswith("probe_success{") and v == 1}
    assert {k.split('monitor="')[1].split('"')[0] for k in success} == {"live", "works"}

    groups = await sd_groups(client, db)
    assert sorted(g["labels"]["monitor"] for g in groups) == ["live", "works"]


async def test_reload_adds_changes_and_removes_monitors(
    exporter_client, write_config, tcp_server, closed_port, tmp_path
):
    """Unchanged monitors keep their history and their place in the schedule; a changed one
    keeps its ID and history; a removed one loses its history; a new one starts within its
    interval. /monitors/metrics shows the change as soon as the reload answers."""
    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    refused = f"127.0.0.1:{closed_port}"
    db = tmp_path / "sonde.db"

    def entry(name: str, where: str, module: str = "tcp") -> str:
        return f"{{name: {name}, module: {module}, target: '{where}', interval: 1s}}"

    client = await exporter_client(
        monitors_yaml(entry("kept", target), entry("changed", target), entry("gone", target)),
        monitors=options(db),
    )
    engine = client.exporter.monitors
    ids = {name: tcp_id(name) for name in ("kept", "changed", "gone", "new")}
    await until(
        "2 results of each monitor",
        lambda: all(result_count(db, ids[n]) >= 2 for n in ("kept", "changed", "gone")),
    )
    kept_slot = engine.scheduler.slot(ids["kept"])
    before = {n: stored_results(db, ids[n]) for n in ("kept", "changed")}

    write_config(
        monitors_yaml(entry("kept", target), entry("changed", refused), entry("new", target))
    )
    response = await client.post("/-/reload")
    reloaded = time.monotonic()
    assert response.status == 200, await response.text()

    # At once: the database and the endpoints have the new set.
    assert set(stored_monitors(db)) == {ids["kept"], ids["changed"], ids["new"]}
    assert result_count(db, ids["gone"]) == 0
    metrics = await monitors_metrics(client)
    assert not [k for k in metrics if 'monitor="gone"' in k]
    assert [k for k in metrics if k.startswith("sonde_monitor_state{") and 'monitor="new"' in k]
    groups = await sd_groups(client, db)
    assert {g["labels"]["monitor"]: g["labels"]["__param_target"] for g in groups} == {
        "kept": target,
        "changed": refused,
        "new": target,
    }
    # The unchanged monitor kept its slot (its place and counters), not a fresh one.
    assert engine.scheduler.slot(ids["kept"]) is kept_slot

    # The new monitor is checked within its interval (1s), plus a loaded box's lag.
    await until("the new monitor's first result", lambda: result_count(db, ids["new"]) >= 1, 10)
    assert time.monotonic() - reloaded < 1.0 + LAG_BOUND + 1.0  # + a second for the commit
    await until(
        "the changed monitor's first refused check",
        lambda: stored_results(db, ids["changed"])[-1][3] == "down",
        10,
    )
    # History of kept and changed monitors is still there, under the same IDs.
    for name, old in before.items():
        assert stored_results(db, ids[name])[: len(old)] == old


async def test_an_unrelated_module_change_keeps_monitors_and_their_slots(
    exporter_client, write_config, tcp_server, tmp_path
):
    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    db = tmp_path / "sonde.db"
    monitor = f"{{name: steady, module: tcp, target: '{target}', interval: 1s}}"
    client = await exporter_client(monitors_yaml(monitor), monitors=options(db))
    engine = client.exporter.monitors
    await until("a result", lambda: result_count(db, tcp_id("steady")) >= 1)
    slot, created = engine.scheduler.slot(tcp_id("steady")), stored_monitors(db)

    other = "  tcp_other:\n    prober: tcp\n    timeout: "
    write_config(monitors_yaml(monitor).replace(other + "1s", other + "750ms"))
    assert (await client.post("/-/reload")).status == 200
    assert client.exporter.config.modules["tcp_other"].timeout == 0.75
    assert stored_monitors(db) == created
    assert engine.scheduler.slot(tcp_id("steady")) is slot


async def test_restart_keeps_history_ids_and_the_last_result(exporter_client, tcp_server, tmp_path):
    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    db = tmp_path / "sonde.db"
    config = monitors_yaml(f"{{name: web, module: tcp, target: '{target}', interval: 2s}}")
    client = await exporter_client(config, monitors=options(db))
    monitor_id = tcp_id("web")
    await until("2 results", lambda: result_count(db, monitor_id) >= 2)
    await client.close()
    history = stored_results(db, monitor_id)
    monitors = stored_monitors(db)

    client = await exporter_client(config, monitors=options(db))
    assert stored_monitors(db) == monitors
    assert stored_results(db, monitor_id)[: len(history)] == history
    # Before its next check, /monitors/metrics shows the stored last result.
    metrics = await monitors_metrics(client)
    labels = f'module="tcp",monitor="web",monitor_id="{monitor_id}",target="{target}"'
    assert metrics[f"probe_success{{{labels}}}"] == 1
    await until("a result after the restart", lambda: result_count(db, monitor_id) > len(history))


async def test_a_state_change_by_reload_takes_effect_at_once(
    exporter_client, write_config, tcp_server, tmp_path
):
    """active -> disabled stops the checks (a check already running may still land); disabled
    -> maintenance starts them again within the interval, under the same ID and history."""
    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    db = tmp_path / "sonde.db"

    def config(status: str) -> str:
        return monitors_yaml(
            f"{{name: web, module: tcp, target: '{target}', interval: 1s, status: {status}}}"
        )

    client = await exporter_client(config("active"), monitors=options(db))
    monitor_id = tcp_id("web")
    await until("2 results", lambda: result_count(db, monitor_id) >= 2)

    write_config(config("disabled"))
    assert (await client.post("/-/reload")).status == 200
    assert client.exporter.monitors.scheduler.slot(monitor_id) is None
    assert await sd_groups(client, db) == []
    engine = client.exporter.monitors
    await until("no check in flight", lambda: engine.scheduler.stats.in_flight == 0)
    # An awaited change is written with every result queued before it.
    await engine.store.revoke_key("none")
    stopped = result_count(db, monitor_id)
    await asyncio.sleep(1.5)  # one and a half intervals: a tick would have come
    assert result_count(db, monitor_id) == stopped

    write_config(config("maintenance"))
    assert (await client.post("/-/reload")).status == 200
    assert stored_monitors(db)[monitor_id][1] == "maintenance"
    await until("a check in maintenance", lambda: result_count(db, monitor_id) > stopped, 10)
