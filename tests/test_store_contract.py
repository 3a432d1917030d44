"""The MonitorStore contract, run against every implementation (IMPLEMENTATIONS): what the
engine, the API, the status page and the api-key command rely on. A new store passes these
before anything uses it. Each store is real: SQLite on a file and in memory."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from monitor_tools import until

from sonde_exporter.storage import (
    ApiKeyRow,
    Conflict,
    MonitorRecord,
    MonitorStore,
    ResultRecord,
    SqliteStore,
    StorageUnavailable,
)
from sonde_exporter.storage.records import HOUR, Check


@dataclass(frozen=True)
class Implementation:
    name: str
    make: Callable[[Path], MonitorStore]
    """A store with its data under the given (empty) directory."""
    blocked: Callable[[Path], MonitorStore] | None = None
    """A store whose location cannot be opened until the directory's `data` is a directory
    (it is a regular file at first); None where no such trouble exists (in memory)."""


IMPLEMENTATIONS = [
    Implementation(
        "sqlite-file",
        lambda d: SqliteStore(str(d / "sonde.db")),
        lambda d: SqliteStore(str(d / "data" / "sonde.db"), retry_interval=0.1),
    ),
    Implementation("sqlite-memory", lambda d: SqliteStore(":memory:")),
]
NOW = 1_700_000_000.0
"""A whole hour plus 2,000 s: results at NOW - k fall in this hour for k < 2,000."""


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda i: i.name)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MonitorStore]:
    implementation: Implementation = request.param
    made = implementation.make(tmp_path)
    await made.start()
    assert made.available
    yield made
    await made.close()


def monitor(name: str, **changes: object) -> MonitorRecord:
    record = MonitorRecord(
        id=f"tcpm_{name}",
        kind="tcp",
        source="api",
        name=name,
        module="tcp",
        target="127.0.0.1:9",
        interval=60.0,
        timeout=None,
        status="active",
        created_at=NOW - 86400,
        updated_at=NOW - 86400,
        labels={"team": "sre"},
        spec={"tags": ["shop"]},
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def result(monitor_id: str, at: float, status: str = "up", **changes: object) -> ResultRecord:
    up = status == "up"
    record = ResultRecord(
        monitor_id=monitor_id,
        checked_at=at,
        status=status,  # type: ignore[arg-type]
        response_time=0.02 if up else None,
        reason=None if up else "connect_refused",
        error=None if up else "connection refused",
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


async def add(store: MonitorStore, *results: ResultRecord) -> list[ResultRecord]:
    """Results accepted together (so they may share a write), once stored."""
    return list(await asyncio.gather(*(store.add_result(r) for r in results)))


async def filled(store: MonitorStore, name: str, times: list[float]) -> str:
    saved = await store.save_monitor(monitor(name), new=True)
    await add(store, *(result(saved.id, at) for at in times))
    return saved.id


async def times(store: MonitorStore, monitor_id: str) -> list[float]:
    page = await store.page_results(monitor_id, 1000, 0)
    assert page is not None
    return [r.checked_at for r in page.results]


# --- monitors ---------------------------------------------------------------------------


async def test_saved_monitors_load_as_saved(store: MonitorStore) -> None:
    a = await store.save_monitor(monitor("a"), new=True)
    b = await store.save_monitor(monitor("b", labels={}, spec={}, timeout=2.5), new=True)
    assert a == monitor("a") and b == monitor("b", labels={}, spec={}, timeout=2.5)
    assert (await store.load()).monitors == [a, b]  # in the order they were made


async def test_a_taken_id_is_a_conflict_and_a_gone_one_a_lookup_error(store: MonitorStore) -> None:
    await store.save_monitor(monitor("a"), new=True)
    with pytest.raises(Conflict, match="tcpm_a"):
        await store.save_monitor(monitor("a", target="127.0.0.1:10"), new=True)
    with pytest.raises(LookupError):
        await store.save_monitor(monitor("gone"), new=False)
    assert [m.name for m in (await store.load()).monitors] == ["a"]


async def test_an_update_replaces_in_place_and_keeps_the_history(store: MonitorStore) -> None:
    monitor_id = await filled(store, "a", [NOW - 2, NOW - 1])
    changed = monitor("a", target="127.0.0.1:10", status="disabled", updated_at=NOW)
    assert await store.save_monitor(changed, new=False) == changed
    assert (await store.load()).monitors == [changed]
    assert await times(store, monitor_id) == [NOW - 1, NOW - 2]


async def test_a_deleted_monitor_takes_its_history_with_it(store: MonitorStore) -> None:
    a = await filled(store, "a", [NOW - 2, NOW - 1])
    b = await filled(store, "b", [NOW - 2])
    hour = int(NOW // HOUR)
    assert await store.delete_monitor(a)
    assert not await store.delete_monitor(a)
    assert await store.page_results(a, 10, 0) is None
    assert await store.history(a, (10, 0), 10, 10, hour) is None
    stored = await store.load()
    assert [m.id for m in stored.monitors] == [b] and list(stored.latest) == [b]
    changes = await store.status_changes(hour - 1, None, 10)
    assert list(changes.keys) == [b] and list(changes.sums_since) == [changes.keys[b]]
    assert list(await store.uptime_sums(hour, before=hour + 1)) == [changes.keys[b]]
    # The same ID again starts with no history, under a new key.
    await store.save_monitor(monitor("a"), new=True)
    assert await times(store, a) == []
    again = await store.status_changes(hour - 1, None, 10)
    assert again.keys[a] not in (changes.keys[b], *changes.sums_since)


async def test_a_monitor_the_store_cannot_hold_fails_alone(store: MonitorStore) -> None:
    """Labels that are not text (bytes): that save fails with its own error, the saves
    beside it are stored, and the store goes on."""
    bad = monitor("bad", labels={"key": b"raw"})
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            store.save_monitor(monitor("a"), new=True),
            store.save_monitor(bad, new=True),
            store.save_monitor(monitor("b"), new=True),
            return_exceptions=True,
        ),
        5,  # a store that stopped answering fails here instead of hanging
    )
    assert isinstance(outcomes[1], Exception) and not isinstance(outcomes[1], StorageUnavailable)
    assert outcomes[0] == monitor("a") and outcomes[2] == monitor("b")
    assert store.available
    await asyncio.wait_for(store.save_monitor(monitor("c"), new=True), 5)
    assert [m.name for m in (await store.load()).monitors] == ["a", "b", "c"]


async def test_syncing_the_config_monitors(store: MonitorStore) -> None:
    """New ones added, changed ones replaced with created_at and history kept, unchanged ones
    left as stored, missing ones deleted with their history; API monitors untouched."""
    config = {n: monitor(n, source="config") for n in ("keep", "change", "drop")}
    await store.sync_config(config.values())
    api = await filled(store, "api", [NOW - 1])
    await add(store, result(config["change"].id, NOW - 1), result(config["drop"].id, NOW - 1))
    later = {
        "keep": dataclasses.replace(config["keep"], created_at=NOW, updated_at=NOW),
        "change": monitor("change", source="config", interval=30.0, created_at=NOW),
        "new": monitor("new", source="config", created_at=NOW),
    }
    kept, deleted = await store.sync_config(later.values())
    assert deleted == [config["drop"].id]
    assert kept == [
        config["keep"],
        dataclasses.replace(later["change"], created_at=config["change"].created_at),
        later["new"],
    ]
    stored = await store.load()
    assert {m.id for m in stored.monitors} == {api, *(m.id for m in kept)}
    assert await times(store, config["change"].id) == [NOW - 1]
    assert await store.page_results(config["drop"].id, 10, 0) is None


# --- results ----------------------------------------------------------------------------


async def test_results_are_numbered_as_stored_and_refused_for_a_gone_monitor(
    store: MonitorStore,
) -> None:
    monitor_id = (await store.save_monitor(monitor("a"), new=True)).id
    details = {"traceroute": {"hops": [None]}}
    first, second = await add(
        store,
        result(monitor_id, NOW - 2, details=details, attempts=3, degraded=True),
        result(monitor_id, NOW - 1, "timeout"),
    )
    assert first.seq is not None and second.seq is not None and second.seq > first.seq
    assert first == result(
        monitor_id, NOW - 2, details=details, attempts=3, degraded=True, seq=first.seq
    )
    page = await store.page_results(monitor_id, 10, 0)
    assert page is not None and page.results == [second, first] and page.total == 2
    with pytest.raises(LookupError):
        await store.add_result(result("tcpm_gone", NOW))


async def test_pages_newest_first_with_the_total(store: MonitorStore) -> None:
    a = await filled(store, "a", [NOW - 100 + t for t in range(10)])
    await filled(store, "b", [NOW - 100 + t for t in range(3)])

    async def page(limit: int, offset: int) -> tuple[list[float], int]:
        found = await store.page_results(a, limit, offset)
        assert found is not None
        return [r.checked_at - NOW for r in found.results], found.total

    assert await page(3, 0) == ([-91, -92, -93], 10)
    assert await page(3, 3) == ([-94, -95, -96], 10)
    assert await page(5, 8) == ([-99, -100], 10)
    assert await page(5, 10) == ([], 10)
    assert await store.page_results("tcpm_none", 5, 0) is None


async def test_load_gives_each_monitors_latest_result(store: MonitorStore) -> None:
    a = await filled(store, "a", [NOW - 3, NOW - 2])
    b = await filled(store, "b", [NOW - 1])
    await store.save_monitor(monitor("never"), new=True)
    latest = (await store.load()).latest
    assert {k: r.checked_at for k, r in latest.items()} == {a: NOW - 2, b: NOW - 1}


async def test_prune_by_age_in_steps(store: MonitorStore) -> None:
    a = await filled(store, "a", [NOW - 10 + t for t in range(10)])
    b = await filled(store, "b", [NOW - 10 + t for t in range(10)])
    # 10 results are older than NOW - 5 (5 per monitor): 4, then 4, then the last 2.
    steps = [await store.prune(NOW - 5, keep_per_monitor=1000, limit=4) for _ in range(4)]
    assert steps == [4, 4, 2, 0]
    for monitor_id in (a, b):
        assert await times(store, monitor_id) == [NOW - 1, NOW - 2, NOW - 3, NOW - 4, NOW - 5]


async def test_prune_by_count_keeps_the_newest_of_each_monitor(store: MonitorStore) -> None:
    a = await filled(store, "a", [NOW + i for i in range(10)])
    b = await filled(store, "b", [NOW + i for i in range(2)])
    steps = [await store.prune(0.0, keep_per_monitor=3, limit=5) for _ in range(3)]
    assert steps == [5, 2, 0]
    assert await times(store, a) == [NOW + 9, NOW + 8, NOW + 7]
    assert await times(store, b) == [NOW + 1, NOW]


async def test_prune_drops_the_rollups_of_old_hours(store: MonitorStore) -> None:
    hour = int(NOW // HOUR)
    a = await filled(store, "a", [NOW - 5 * HOUR, NOW - 1])
    await store.prune(NOW - 2 * HOUR, keep_per_monitor=1000, limit=100)
    key = (await store.status_changes(hour, None, 0)).keys[a]
    assert (await store.uptime_sums(hour, before=hour + 1))[key] == (1, 1, 1, 1, 1, 1)


# --- the status page --------------------------------------------------------------------


async def test_uptime_sums_and_the_hours_since(store: MonitorStore) -> None:
    """One check an hour for 40 days, up but every fourth: the windows count 24 h, 7 d and
    30 d of them; `before` leaves out the newest hours, sums_since counts only those."""
    hour = int(NOW // HOUR)
    a = (await store.save_monitor(monitor("a"), new=True)).id
    statuses = ["down" if h % 4 == 0 else "up" for h in range(40 * 24)]
    await add(store, *(result(a, NOW - h * HOUR, s) for h, s in enumerate(statuses)))
    key = (await store.status_changes(hour, None, 0)).keys[a]

    def sums(hours: int, skip: int = 0) -> tuple[int, int]:
        window = statuses[skip:hours]
        return len(window), sum(s == "up" for s in window)

    everything = await store.uptime_sums(hour, before=hour + 1)
    assert everything == {key: (*sums(24), *sums(7 * 24), *sums(30 * 24))}
    settled = await store.uptime_sums(hour, before=hour - 1)
    assert settled == {key: (*sums(24, 2), *sums(7 * 24, 2), *sums(30 * 24, 2))}
    assert (await store.status_changes(hour - 1, None, 0)).sums_since == {key: sums(2)}


async def test_status_changes_give_what_was_written_since(store: MonitorStore) -> None:
    a = await filled(store, "a", [NOW - 3])
    b = await filled(store, "b", [NOW - 2])
    hour = int(NOW // HOUR)
    first = await store.status_changes(hour, None, 10)
    assert first.checks is None  # nothing asked for
    assert set(first.keys) == {a, b} and first.newest > 0
    (new,) = await add(store, result(b, NOW - 1, "down", degraded=False))
    after = await store.status_changes(hour, first.newest, 10)
    assert after.newest == new.seq
    assert after.checks == [(after.keys[b], Check(NOW - 1, "down", None, 0))]
    assert (await store.status_changes(hour, after.newest, 10)).checks == []
    # More than the limit, or a row past the newest (rows deleted): None, read it all again.
    assert (await store.status_changes(hour, 0, 2)).checks is None
    assert (await store.status_changes(hour, after.newest + 1, 10)).checks is None


async def test_recent_checks_newest_first_up_to_a_row(store: MonitorStore) -> None:
    a = await filled(store, "a", [NOW - 3, NOW - 2])
    never = (await store.save_monitor(monitor("never"), new=True)).id
    hour = int(NOW // HOUR)
    keys = (await store.status_changes(hour, None, 0)).keys
    up_to = (await store.status_changes(hour, None, 0)).newest
    await add(store, result(a, NOW - 1, "timeout"))
    found = await store.recent_checks([keys[a], keys[never]], 5, up_to)
    assert found == {
        keys[a]: [Check(NOW - 2, "up", 0.02, 0), Check(NOW - 3, "up", 0.02, 0)],
        keys[never]: [],
    }
    newest = (await store.status_changes(hour, None, 0)).newest
    assert [c.status for c in (await store.recent_checks([keys[a]], 1, newest))[keys[a]]] == [
        "timeout"
    ]


async def test_history_of_one_monitor(store: MonitorStore) -> None:
    hour = int(NOW // HOUR)
    trace = {"target": "127.0.0.1", "hops": [{"ttl": 1, "address": "127.0.0.2"}]}
    a = (await store.save_monitor(monitor("a"), new=True)).id
    traced, *_ = await add(
        store,
        result(a, NOW - 5, "down", details={"traceroute": trace}),
        *(result(a, NOW - t) for t in (4, 3, 2, 1)),
    )
    found = await store.history(a, (2, 1), points=3, trace_within=10, hour=hour)
    assert found is not None
    assert [r.checked_at for r in found.page.results] == [NOW - 2, NOW - 3]
    assert found.page.total == 5
    assert [c.checked_at for c in found.recent] == [NOW - 1, NOW - 2, NOW - 3]
    assert found.sums == (5, 4, 5, 4, 5, 4)
    assert found.trace == (traced.seq, NOW - 5, trace)
    # Looked for among the newest `trace_within` only.
    assert (await store.history(a, (2, 0), 3, 4, hour)) is not None
    assert (await store.history(a, (2, 0), 3, 4, hour)).trace is None  # type: ignore[union-attr]


# --- API keys ---------------------------------------------------------------------------


def api_key(name: str, digest: bytes) -> ApiKeyRow:
    return ApiKeyRow(name, digest, frozenset({"sd:read", "tcp-monitors:read"}), NOW, None)


async def test_api_keys_created_found_touched_and_revoked(store: MonitorStore) -> None:
    ci, ops = api_key("ci", b"\x01" * 32), api_key("ops", b"\x02" * 32)
    await store.create_key(ops)
    await store.create_key(ci)
    with pytest.raises(Conflict, match="ci"):
        await store.create_key(api_key("ci", b"\x03" * 32))
    assert await store.all_keys() == [ci, ops]  # by name
    assert await store.find_key(b"\x02" * 32) == ops
    assert await store.find_key(b"\x09" * 32) is None
    await store.touch_key("ci", NOW + 5)
    assert await store.find_key(ci.hash) == dataclasses.replace(ci, last_used_at=NOW + 5)
    assert await store.revoke_key("ci")
    assert not await store.revoke_key("ci")
    assert await store.all_keys() == [ops]
    assert await store.find_key(ci.hash) is None


# --- unavailable ------------------------------------------------------------------------


async def test_a_closed_store_refuses_every_call(store: MonitorStore) -> None:
    await store.close()
    assert not store.available
    calls = [
        store.load(),
        store.save_monitor(monitor("a"), new=True),
        store.delete_monitor("tcpm_a"),
        store.sync_config([]),
        store.page_results("tcpm_a", 1, 0),
        store.prune(NOW, 1, 1),
        store.uptime_sums(1, 1),
        store.status_changes(1, None, 1),
        store.recent_checks([1], 1, 1),
        store.history("tcpm_a", (1, 0), 1, 1, 1),
        store.all_keys(),
        store.find_key(b""),
        store.create_key(api_key("x", b"x")),
        store.revoke_key("x"),
    ]
    for call in calls:
        with pytest.raises(StorageUnavailable):
            await call
    with pytest.raises(StorageUnavailable):
        await store.add_result(result("tcpm_a", NOW))
    with pytest.raises(StorageUnavailable):
        await store.touch_key("x", NOW)


@pytest.mark.parametrize(
    "implementation", [i for i in IMPLEMENTATIONS if i.blocked is not None], ids=lambda i: i.name
)
async def test_a_store_that_cannot_open_says_so_then_recovers(
    implementation: Implementation, tmp_path: Path
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a regular file where the directory should be\n")
    assert implementation.blocked is not None
    store = implementation.blocked(tmp_path)
    back: list[bool] = []
    store.when_available(lambda: back.append(True))
    await store.start()
    try:
        assert not store.available
        with pytest.raises(StorageUnavailable):
            await store.load()
        with pytest.raises(StorageUnavailable):
            await store.add_result(result("tcpm_a", NOW))
        blocker.unlink()
        blocker.mkdir()
        await until("the store to come back", lambda: store.available, 5)
        assert back == [True]
        assert await store.save_monitor(monitor("a"), new=True) == monitor("a")
        assert (await store.load()).monitors == [monitor("a")]
    finally:
        await store.close()
