"""Scheduled monitors in real processes: SIGHUP reloads them, and `kill -9` loses nothing that
was acknowledged, neither in the middle of a write burst nor in a running exporter."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest
from monitor_tools import monitors_yaml, stored_monitors, stored_results, tcp_id
from processes import LoopbackServer, Process, wait_for

import sonde_exporter

HERE = Path(__file__).resolve().parent
# The code under test, whatever the working directory of the child.
ENV = {**os.environ, "PYTHONPATH": str(Path(sonde_exporter.__file__).resolve().parent.parent)}
ACKNOWLEDGED = 3000
"""Results acknowledged before the kill: many batches, the kill lands inside one."""


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_kill_9_during_a_write_burst_loses_nothing_acknowledged(tmp_path: Path):
    """The driver prints each change once `await db.change(...)` returned (its commit done
    with synchronous=FULL), 64 in flight at a time. Every printed row is in the file after
    SIGKILL; rows committed but not yet printed may be there too."""
    path = tmp_path / "sonde.db"
    driver = subprocess.Popen(
        [sys.executable, str(HERE / "storage_burst_driver.py"), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    lines: list[str] = []
    enough = threading.Event()

    def read() -> None:
        assert driver.stdout is not None
        for line in driver.stdout:  # until the pipe closes, after the kill
            if line.endswith("\n"):  # a line cut by the kill was never acknowledged
                lines.append(line.strip())
            if len(lines) >= ACKNOWLEDGED:
                enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert enough.wait(60), f"the driver stopped: {driver.poll()} {driver.stderr}"
        assert driver.poll() is None, "the burst must still be running when it is killed"
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait(10)
        reader.join(10)
    assert driver.returncode == -signal.SIGKILL

    results = {int(line.split()[1]) for line in lines if line.startswith("result ")}
    monitors = {line.split()[1] for line in lines if line.startswith("monitor ")}
    assert len(results) + len(monitors) >= ACKNOWLEDGED
    assert len(monitors) > 8  # monitors written amid the burst too
    assert integrity(path) == "ok"
    with closing(sqlite3.connect(path)) as conn:
        stored_seqs = {r[0] for r in conn.execute("SELECT seq FROM results")}
        stored_ids = {r[0] for r in conn.execute("SELECT id FROM monitors")}
    assert results - stored_seqs == set()
    assert monitors - stored_ids == set()


@pytest.fixture
def open_target():
    server = LoopbackServer()
    yield f"127.0.0.1:{server.port}"
    server.close()


def exporter(tmp_path: Path, name: str, config: Path, db: Path) -> Process:
    return Process(
        name,
        [
            sys.executable, "-m", "sonde_exporter",
            "--config.file", str(config),
            "--web.listen-address", "127.0.0.1:0",
            "--storage.path", str(db),
        ],
        tmp_path,
        env=ENV,
    )  # fmt: skip


def test_sighup_reloads_the_monitors(tmp_path: Path, open_target: str):
    config, db = tmp_path / "sonde.yml", tmp_path / "data" / "sonde.db"

    def entry(name: str) -> str:
        return f"{{name: {name}, module: tcp, target: '{open_target}', interval: 1s}}"

    config.write_text(monitors_yaml(entry("first"), entry("second")))
    process = exporter(tmp_path, "sonde-exporter", config, db)
    try:
        process.wait_listening()
        wait_for("results of the first monitor", lambda: stored_results(db, tcp_id("first")))
        history = stored_results(db, tcp_id("first"))
        config.write_text(monitors_yaml(entry("first"), entry("third")))
        process.proc.send_signal(signal.SIGHUP)
        wait_for(
            "the third monitor's results",
            lambda: stored_results(db, tcp_id("third")),
        )
        assert set(stored_monitors(db)) == {tcp_id("first"), tcp_id("third")}
        assert stored_results(db, tcp_id("second")) == []
        assert stored_results(db, tcp_id("first"))[: len(history)] == history
    finally:
        assert process.stop() == 0, process.log()


def test_an_exporter_killed_with_9_restarts_with_its_monitors_and_history(
    tmp_path: Path, open_target: str
):
    config, db = tmp_path / "sonde.yml", tmp_path / "sonde.db"
    config.write_text(
        monitors_yaml(
            *(
                f"{{name: m{i}, module: tcp, target: '{open_target}', interval: 1s}}"
                for i in range(20)
            )
        )
    )
    ids = {tcp_id(f"m{i}") for i in range(20)}
    first = exporter(tmp_path, "first", config, db)
    wait_for("2 results of every monitor", lambda: len(stored_results(db)) >= 40, 30)
    first.proc.send_signal(signal.SIGKILL)
    first.stop()
    monitors, history = stored_monitors(db), stored_results(db)
    assert set(monitors) == ids
    assert integrity(db) == "ok"

    second = exporter(tmp_path, "second", config, db)
    try:
        wait_for("a new result", lambda: len(stored_results(db)) > len(history), 30)
        assert stored_monitors(db) == monitors
        assert stored_results(db)[: len(history)] == history
    finally:
        assert second.stop() == 0, second.log()
