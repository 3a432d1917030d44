"""The probe history behind the status page and /logs: bounded, failures kept longer."""

from __future__ import annotations

from sonde_exporter.history import History, ProbeResult
from sonde_exporter.prober_base import Reason


def add(history: History, success: bool, target: str = "db:5432", module: str = "tcp") -> int:
    result = ProbeResult(
        id=history.next_id(),
        module=module,
        target=target,
        success=success,
        reason=None if success else Reason.CONNECT_REFUSED,
        duration=0.01,
        started=0.0,
        log=(),
    )
    history.add(result)
    return result.id


def ids(history: History) -> list[int]:
    return [r.id for r in history]


def test_successes_age_out_after_limit() -> None:
    history = History(3)
    for _ in range(10):
        add(history, True)
    assert ids(history) == [10, 9, 8]
    assert len(history) == 3


def test_failure_moves_to_the_preserved_window_when_it_ages_out() -> None:
    history = History(3)
    failure = add(history, False)
    for _ in range(20):
        add(history, True)
    assert ids(history) == [21, 20, 19, failure]
    kept = history.by_id(failure)
    assert kept is not None and (kept.id, kept.success) == (failure, False)
    assert history.by_id(2) is None


def test_preserved_failures_are_bounded_too() -> None:
    history = History(2)
    for _ in range(50):
        add(history, False)
    assert ids(history) == [50, 49, 48, 47]
    assert len(history) == 2 * history.limit


def test_lookup_by_target_finds_the_newest_and_filters_by_module() -> None:
    history = History(10)
    first = add(history, False, target="a:1", module="tcp")
    second = add(history, True, target="a:1", module="tcp_tls")
    add(history, True, target="b:1", module="tcp")
    found = history.by_target("a:1", None)
    assert found is not None and found.id == second
    found = history.by_target("a:1", "tcp")
    assert found is not None and found.id == first
    assert history.by_target("a:1", "ssh") is None
    assert history.by_target("c:1", None) is None


def test_limit_zero_keeps_nothing_but_ids_still_advance() -> None:
    history = History(0)
    assert add(history, False) == 1
    assert add(history, True) == 2
    assert len(history) == 0
