"""The scheduler's limits, against loopback targets that never answer: no pile-up (a tick
that finds its check still running is skipped and counted), at most --monitors.max-concurrency
checks at once, every tick accounted for, and a clean shutdown."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest
from helpers import parse_metrics, promtool_check
from monitor_tools import HangingServer, monitors_yaml, stored_results, tcp_id, until

from sonde_exporter.monitors.options import MonitorOptions


@pytest.fixture
async def hanging():
    server = HangingServer()
    port = await server.start()
    yield server, f"127.0.0.1:{port}"
    await server.close()


def hanging_monitors(target: str, count: int) -> str:
    """`count` monitors of the tcp_wait module (1s timeout, waits for a line that never comes)
    at a 1s interval: each check holds its connection for its whole timeout."""
    return monitors_yaml(
        *(
            f"{{name: hang{i}, module: tcp_wait, target: '{target}', interval: 1s}}"
            for i in range(count)
        )
    )


async def text_of(client, path: str) -> str:  # type: ignore[no-untyped-def]
    response = await client.get(path)
    text = await response.text()
    assert response.status == 200, text
    return text


async def test_busy_monitors_skip_ticks_and_stay_within_max_concurrency(
    exporter_client, hanging, tmp_path
):
    """Three monitors whose checks take their whole 1s interval share one slot: at most one
    check runs at a time, so each monitor finds its previous check still running (or still
    waiting for the slot) at most ticks. Those ticks are skipped, counted per monitor on
    /monitors/metrics and in total on /metrics, and nothing piles up."""
    server, target = hanging
    db = tmp_path / "sonde.db"
    options = MonitorOptions(storage_path=str(db), max_concurrency=1)
    client = await exporter_client(hanging_monitors(target, 3), monitors=options)
    engine = client.exporter.monitors
    ids = [tcp_id(f"hang{i}") for i in range(3)]

    def skipped() -> dict[str, float]:
        return {m: float(engine.scheduler.slot(m).skipped) for m in ids}  # type: ignore[union-attr]

    await until("a skipped tick of every monitor", lambda: min(skipped().values()) >= 1, 30)
    text = await text_of(client, "/monitors/metrics")
    promtool_check(text)
    metrics = parse_metrics(text)
    per_monitor = {
        m: v
        for k, v in metrics.items()
        if k.startswith("sonde_monitor_skipped_ticks_total{")
        for m in ids
        if f'monitor_id="{m}"' in k
    }
    assert set(per_monitor) == set(ids)
    assert all(v >= 1 for v in per_monitor.values()), per_monitor
    health = parse_metrics(await text_of(client, "/metrics"))
    assert health["sonde_monitor_skipped_ticks_total"] >= sum(per_monitor.values())
    # In flight: running or waiting for the slot, never more than one per monitor.
    assert 1 <= health["sonde_monitor_checks_in_flight"] <= 3
    assert server.most_open == 1

    slots = {m: engine.scheduler.slot(m) for m in ids}
    await client.close()
    # Every tick ran a check or was skipped: the checks that ran are stored, but for the one
    # in flight at shutdown, which was cancelled (at most one per monitor).
    for monitor_id, slot in slots.items():
        assert slot is not None
        ran = slot.ticks - slot.skipped
        stored = len(stored_results(db, monitor_id))
        assert ran - 1 <= stored <= ran, (monitor_id, slot.ticks, slot.skipped, stored)
        assert {status for *_, status in stored_results(db, monitor_id)} <= {"down", "timeout"}


async def test_max_concurrency_bounds_checks_in_flight(exporter_client, hanging, tmp_path):
    server, target = hanging
    db = tmp_path / "sonde.db"
    options = MonitorOptions(storage_path=str(db), max_concurrency=2)
    client = await exporter_client(hanging_monitors(target, 6), monitors=options)
    await until("two checks at once", lambda: server.most_open >= 2)
    await until("4 connections", lambda: server.accepted >= 4, 30)
    assert server.most_open == 2
    await client.close()


async def test_shutdown_cancels_checks_in_flight_and_leaves_whole_rows(
    exporter_client, hanging, tmp_path
):
    """Stopping while checks hang: they are cancelled at once (not run to their timeout),
    their connections closed, and the file holds only whole results whose roll-ups add up."""
    server, target = hanging
    db = tmp_path / "sonde.db"
    client = await exporter_client(
        hanging_monitors(target, 4), monitors=MonitorOptions(storage_path=str(db))
    )
    await until("a stored result", lambda: stored_results(db))
    await until("checks in flight", lambda: server.open >= 1)
    started = time.monotonic()
    await client.close()
    # Well under the checks' 1s timeout: they were cancelled, not waited for (a loaded box
    # may take a few hundred ms to close the app).
    assert time.monotonic() - started < 0.9
    await until("the hanging connections to close", lambda: server.open == 0, 5)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        incomplete = conn.execute(
            "SELECT count(*) FROM results WHERE status IS NULL OR checked_at IS NULL"
        ).fetchone()[0]
        assert incomplete == 0
        by_results = dict(
            conn.execute("SELECT monitor_key, count(*) FROM results GROUP BY monitor_key")
        )
        by_rollups = dict(
            conn.execute("SELECT monitor_key, sum(checks) FROM rollups GROUP BY monitor_key")
        )
    assert by_results == by_rollups
