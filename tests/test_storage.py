"""The SQLite database on a real file: migrations, refused changes, retention pruning, and a
file that cannot be opened (the exporter's /probe keeps working, the monitor features answer
503, /metrics says so, and all recovers once the file can be opened)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from helpers import assert_succeeded, parse_metrics, probe
from monitor_tools import monitors_yaml, result_count, sd_groups, tcp_id, until

from sonde_exporter.monitors.engine import Retention
from sonde_exporter.monitors.options import MonitorOptions
from sonde_exporter.storage import (
    Database,
    MonitorRecord,
    ResultRecord,
    StorageUnavailable,
    monitor_rows,
    result_rows,
)
from sonde_exporter.storage.schema import MIGRATIONS

TABLES = {"monitors", "results", "rollups", "api_keys"}


def monitor(name: str) -> MonitorRecord:
    now = time.time()
    return MonitorRecord(
        id=f"tcpm_{name}",
        kind="tcp",
        source="api",
        name=name,
        module="tcp",
        target="127.0.0.1:9",
        interval=60.0,
        timeout=None,
        status="active",
        created_at=now,
        updated_at=now,
    )


def result(monitor_id: str, checked_at: float, status: str = "up") -> ResultRecord:
    return ResultRecord(
        monitor_id=monitor_id,
        checked_at=checked_at,
        status=status,  # type: ignore[arg-type]
        response_time=0.001 if status == "up" else None,
        reason=None if status == "up" else "connect_refused",
        error=None,
    )


def schema(path: Path) -> tuple[int, set[str]]:
    with closing(sqlite3.connect(path)) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return version, tables


@pytest.fixture
async def database(tmp_path):
    db = Database(str(tmp_path / "sonde.db"))
    await db.start()
    assert db.available, db.error
    yield db
    await db.close()


async def test_a_version_0_file_is_migrated(tmp_path):
    """A file with no schema yet (user_version 0, say made by hand or by sqlite3) gets every
    migration, in WAL mode with foreign keys on."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (x)")  # something of the user's own stays
    assert schema(path) == (0, {"notes"})
    db = Database(str(path))
    await db.start()
    try:
        assert db.available, db.error
        assert schema(path) == (len(MIGRATIONS), TABLES | {"notes"})
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        pragmas = await db.query(
            lambda c: (
                c.execute("PRAGMA foreign_keys").fetchone()[0],
                c.execute("PRAGMA synchronous").fetchone()[0],
            )
        )
        assert pragmas[0] == 1
        assert await db.change(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL
    finally:
        await db.close()
    # Opening it again runs nothing twice.
    db = Database(str(path))
    await db.start()
    assert db.available, db.error
    await db.close()
    assert schema(path) == (len(MIGRATIONS), TABLES | {"notes"})


async def test_a_newer_schema_is_refused_clearly_and_left_alone(tmp_path):
    path = tmp_path / "new.db"
    newer = len(MIGRATIONS) + 1
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")
    db = Database(str(path))
    await db.start()
    try:
        assert not db.available
        assert db.error == (
            f"cannot open {path}: schema version {newer} is newer than this "
            f"sonde-exporter's {len(MIGRATIONS)}"
        )
        with pytest.raises(StorageUnavailable, match="is newer than"):
            await db.change(lambda c: None)
    finally:
        await db.close()
    assert schema(path) == (newer, set())


async def test_one_refused_change_does_not_undo_the_others(database: Database):
    """Changes that arrive together share a transaction; a refused one is rolled back alone,
    and only the committed ones count as writes."""
    await database.change(lambda c: monitor_rows.insert_monitor(c, monitor("a")))
    writes = database.stats.writes
    outcomes = await asyncio.gather(
        database.change(lambda c: monitor_rows.insert_monitor(c, monitor("b"))),
        database.change(lambda c: monitor_rows.insert_monitor(c, monitor("a"))),  # a duplicate
        database.change(lambda c: result_rows.insert_result(c, result("tcpm_gone", 1.0))),
        database.change(lambda c: result_rows.insert_result(c, result("tcpm_b", 1.0))),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], MonitorRecord)
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert isinstance(outcomes[2], LookupError)
    assert isinstance(outcomes[3], ResultRecord) and outcomes[3].seq is not None
    stored = await database.query(monitor_rows.all_monitors)
    assert [m.id for m in stored] == ["tcpm_a", "tcpm_b"]
    assert database.stats.writes == writes + 2


async def test_a_change_that_raises_fails_alone_and_the_writer_goes_on(
    database: Database, caplog: pytest.LogCaptureFixture
):
    """A monitor whose labels cannot be stored (bytes are not JSON: a real TypeError, not a
    refusal the writer knew of) fails its own change with that error, logged in one line;
    the changes in its transaction commit, the database stays available, and later changes
    are written. (The writer thread used to die here: every later change hung.)"""
    bad = dataclasses.replace(monitor("bad"), labels={"key": b"raw"})  # type: ignore[dict-item]
    writes = database.stats.writes
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            database.change(lambda c: monitor_rows.insert_monitor(c, monitor("a"))),
            database.change(lambda c: monitor_rows.insert_monitor(c, bad)),
            database.change(lambda c: monitor_rows.insert_monitor(c, monitor("b"))),
            return_exceptions=True,
        ),
        5,  # a writer that died never answers: fail here rather than hang
    )
    assert isinstance(outcomes[0], MonitorRecord) and isinstance(outcomes[2], MonitorRecord)
    assert isinstance(outcomes[1], TypeError)
    assert database.available
    later = await asyncio.wait_for(
        database.change(lambda c: monitor_rows.insert_monitor(c, monitor("c"))), 5
    )
    assert later.id == "tcpm_c"
    stored = await database.query(monitor_rows.all_monitors)
    assert [m.id for m in stored] == ["tcpm_a", "tcpm_b", "tcpm_c"]
    assert database.stats.writes == writes + 3
    assert database.stats.write_errors == 0
    failed = [r for r in caplog.records if r.getMessage() == "A database change failed"]
    assert len(failed) == 1 and failed[0].levelname == "WARNING"
    assert dict(failed[0].fields) == {  # type: ignore[attr-defined]
        "err": "TypeError: Object of type bytes is not JSON serializable"
    }


async def test_close_answers_the_changes_being_written(tmp_path: Path):
    """A change still in its transaction when the database closes (it takes 300 ms in the
    writer thread) is committed and its caller told so; it used to be left waiting forever."""
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(conn: sqlite3.Connection) -> MonitorRecord:
        loop.call_soon_threadsafe(started.set)
        time.sleep(0.3)
        return monitor_rows.insert_monitor(conn, monitor("slow"))

    database = Database(str(tmp_path / "sonde.db"))
    await database.start()
    pending = asyncio.ensure_future(database.change(slow))
    await asyncio.wait_for(started.wait(), 5)
    await database.close()
    assert (await asyncio.wait_for(pending, 5)).id == "tcpm_slow"


async def test_a_failed_transaction_turns_the_database_unavailable_until_it_reopens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """A change that breaks the writer's connection (it closes it) fails the whole
    transaction: every change in it gets StorageUnavailable, nothing of it is committed, the
    log says why; the database reopens after its retry interval and takes changes again."""
    db = Database(str(tmp_path / "sonde.db"), retry_interval=0.1)
    await db.start()
    try:
        await db.change(lambda c: monitor_rows.insert_monitor(c, monitor("a")))
        writes = db.stats.writes
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                db.change(lambda c: monitor_rows.insert_monitor(c, monitor("b"))),
                db.change(lambda c: c.close()),
                return_exceptions=True,
            ),
            5,
        )
        assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes
        assert db.stats.writes == writes and db.stats.write_errors == 1
        assert any(r.getMessage() == "The database is unavailable" for r in caplog.records)
        await until("the database to reopen", lambda: db.available, 5)
        assert (await asyncio.wait_for(db.change(lambda c: None), 5)) is None
        stored = await db.query(monitor_rows.all_monitors)
        assert [m.id for m in stored] == ["tcpm_a"]
    finally:
        await db.close()


async def test_deleting_a_monitor_deletes_its_history(database: Database):
    for name in ("a", "b"):
        await database.change(lambda c, n=name: monitor_rows.insert_monitor(c, monitor(n)))  # type: ignore[misc]
        for i in range(3):
            await database.change(
                lambda c, n=name, i=i: result_rows.insert_result(c, result(f"tcpm_{n}", i))  # type: ignore[misc]
            )
    assert await database.change(lambda c: monitor_rows.delete_monitor(c, "tcpm_a"))
    counts = await database.query(
        lambda c: c.execute(
            "SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM rollups)"
        ).fetchone()
    )
    assert counts == (3, 1)
    assert await database.query(lambda c: result_rows.results_page(c, "tcpm_a", 10, 0)) is None


async def fill(db: Database, monitor_id: str, times: list[float]) -> None:
    await db.change(lambda c: monitor_rows.insert_monitor(c, monitor(monitor_id[5:])))

    def insert(c: sqlite3.Connection) -> None:
        for at in times:
            result_rows.insert_result(c, result(monitor_id, at))

    await db.change(insert)


async def remaining(db: Database, monitor_id: str) -> list[float]:
    page = await db.query(lambda c: result_rows.results_page(c, monitor_id, 1000, 0))
    assert page is not None
    return sorted(r.checked_at for r in page[0])


async def test_prune_by_age_in_steps(database: Database):
    await fill(database, "tcpm_a", [float(t) for t in range(100, 110)])
    await fill(database, "tcpm_b", [float(t) for t in range(100, 110)])

    def prune(c: sqlite3.Connection) -> int:
        return result_rows.prune(c, older_than=105.0, keep_per_monitor=1000, limit=4)

    # 10 results are older than 105 (5 per monitor): 4, then 4, then the last 2.
    assert [await database.change(prune) for _ in range(4)] == [4, 4, 2, 0]
    for monitor_id in ("tcpm_a", "tcpm_b"):
        assert await remaining(database, monitor_id) == [105.0, 106.0, 107.0, 108.0, 109.0]


async def test_prune_by_count_keeps_the_newest_of_each_monitor(database: Database):
    now = time.time()
    await fill(database, "tcpm_a", [now + i for i in range(10)])
    await fill(database, "tcpm_b", [now + i for i in range(2)])

    def prune(c: sqlite3.Connection) -> int:
        return result_rows.prune(c, older_than=0.0, keep_per_monitor=3, limit=5)

    assert [await database.change(prune) for _ in range(3)] == [5, 2, 0]
    assert await remaining(database, "tcpm_a") == [now + i for i in range(7, 10)]
    assert await remaining(database, "tcpm_b") == [now, now + 1]


async def test_the_engine_prunes_in_the_background(exporter_client, tcp_server, tmp_path):
    """--storage.retention.results 3: a monitor's older results go while it keeps running."""

    async def accept_and_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    db = tmp_path / "sonde.db"
    options = MonitorOptions(
        storage_path=str(db), retention=Retention(max_results=3, prune_every=0.2, prune_step=2)
    )
    config = monitors_yaml(f"{{name: web, module: tcp, target: '{target}', interval: 1s}}")
    client = await exporter_client(config, monitors=options)
    monitor_id = tcp_id("web")
    await until("a first result", lambda: result_count(db, monitor_id) >= 1)
    with closing(sqlite3.connect(db, timeout=10)) as conn, conn:  # 20 old results, by hand
        (key,) = conn.execute("SELECT key FROM monitors WHERE id = ?", (monitor_id,)).fetchone()
        conn.executemany(
            "INSERT INTO results (monitor_key, checked_at, status, attempts, degraded) "
            "VALUES (?, ?, 'up', 1, 0)",
            [(key, 1000.0 + i) for i in range(20)],
        )
    await until("the count bound", lambda: result_count(db, monitor_id) <= 3, 10)
    await until("a new result", lambda: result_count(db, monitor_id) == 3, 10)
    await client.close()


async def test_an_unopenable_file_then_fixed(tmp_path: Path):
    blocker = tmp_path / "data"
    blocker.write_text("a regular file where the directory should be\n")
    path = blocker / "sonde.db"
    reopened: list[bool] = []
    db = Database(str(path), retry_interval=0.1)
    db.when_available(lambda: reopened.append(True))
    await db.start()
    try:
        assert not db.available
        assert db.error is not None and db.error.startswith(f"cannot open {path}: ")
        with pytest.raises(StorageUnavailable):
            await db.query(monitor_rows.all_monitors)
        assert db.change_soon(lambda c: None).exception() is not None
        blocker.unlink()
        blocker.mkdir()
        await until("the database to reopen", lambda: db.available, 5)
        assert reopened == [True]
        assert await db.query(monitor_rows.all_monitors) == []
    finally:
        await db.close()


async def test_unwritable_database_leaves_probe_working(
    exporter_client, tcp_server, tmp_path, caplog
):
    """--storage.path under a regular file (the tests run as root, whom permissions do not
    stop): /probe answers as ever; /monitors/metrics and /v1/sd answer 503 saying why;
    /metrics shows sonde_storage_available 0; the log says why. Once the directory can be
    made, the engine opens the file, loads the monitors and checks them."""

    async def accept_and_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    target = f"127.0.0.1:{await tcp_server(accept_and_close)}"
    blocker = tmp_path / "data"
    blocker.write_text("not a directory\n")
    path = blocker / "sonde.db"
    options = MonitorOptions(storage_path=str(path), storage_retry=0.2)
    config = monitors_yaml(f"{{name: web, module: tcp, target: '{target}', interval: 1s}}")
    client = await exporter_client(config, monitors=options)

    status, body = await probe(client, module="tcp", target=target)
    assert status == 200
    assert_succeeded(body)
    response = await client.get("/monitors/metrics")
    text = await response.text()
    assert response.status == 503, text
    # the path and the OS error are in the log only: these answers need no key
    assert text == "monitors unavailable: the database is not open (the log says why)\n"
    assert response.headers["Retry-After"] == "5"
    # /v1/sd reads its API keys from the database first: 503 in the API's envelope
    response = await client.get("/v1/sd", headers={"Authorization": "Bearer sonde_x"})
    error = (await response.json())["error"]
    assert (response.status, error["code"]) == (503, "UNAVAILABLE")
    assert error["message"] == "monitors unavailable: the database is not open (the log says why)"
    assert response.headers["Retry-After"] == "5"
    metrics = parse_metrics(await (await client.get("/metrics")).text())
    assert metrics["sonde_storage_available"] == 0
    assert metrics["sonde_storage_errors_total"] >= 1
    assert any(
        r.getMessage() == "The database is unavailable" and str(path) in str(r.__dict__)
        for r in caplog.records
    )

    blocker.unlink()
    blocker.mkdir()

    async def serving() -> bool:
        return (await client.get("/monitors/metrics")).status == 200

    await until("/monitors/metrics to answer", serving, 10)
    metrics = parse_metrics(await (await client.get("/metrics")).text())
    assert metrics["sonde_storage_available"] == 1
    await until("a stored result", lambda: result_count(path, tcp_id("web")) >= 1, 10)
    assert [g["labels"]["monitor"] for g in await sd_groups(client, path)] == ["web"]


async def test_results_share_a_commit_and_an_awaited_change_does_not_wait(database: Database):
    """Changes nobody awaits (a check's result) wait for company; one someone awaits (the
    API's) takes what is queued into its transaction at once."""
    await database.change(lambda c: monitor_rows.insert_monitor(c, monitor("a")))
    before = database.stats.transactions
    queued = [
        database.change_soon(lambda c, i=i: result_rows.insert_result(c, result("tcpm_a", i)))  # type: ignore[misc]
        for i in range(5)
    ]
    await database.change(lambda c: monitor_rows.insert_monitor(c, monitor("b")))
    assert all(f.done() and f.exception() is None for f in queued)
    assert database.stats.transactions == before + 1
    # Alone, a result is written once it has lingered.
    alone = database.change_soon(lambda c: result_rows.insert_result(c, result("tcpm_b", 1)))
    await asyncio.wait_for(alone, 5)
    assert database.stats.transactions == before + 2


async def test_pages_of_results_newest_first(database: Database):
    await fill(database, "tcpm_a", [float(t) for t in range(10)])
    await fill(database, "tcpm_b", [float(t) for t in range(3)])

    async def page(limit: int, offset: int) -> tuple[list[float], int]:
        found = await database.query(lambda c: result_rows.results_page(c, "tcpm_a", limit, offset))
        assert found is not None
        return [r.checked_at for r in found[0]], found[1]

    assert await page(3, 0) == ([9.0, 8.0, 7.0], 10)
    assert await page(3, 3) == ([6.0, 5.0, 4.0], 10)
    assert await page(5, 8) == ([1.0, 0.0], 10)
    assert await page(5, 10) == ([], 10)
