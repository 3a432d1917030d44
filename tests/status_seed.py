"""A status-page database with known contents: one monitor in each state, written through the
storage's own SQL (so the roll-ups are what the exporter would have written)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonde_exporter.storage import MonitorRecord, ResultRecord
from sonde_exporter.storage.monitor_rows import insert_monitor
from sonde_exporter.storage.result_rows import insert_result
from sonde_exporter.storage.schema import migrate

CONFIG = """
modules:
  tcp_slow:
    prober: tcp
    timeout: 5s
    degraded_response_time: 200ms
    max_response_time: 500ms
"""
"""The config the seeded monitors run with: its thresholds are drawn on the chart."""

TRACE = {
    "target": "127.0.0.1",
    "reached": False,
    "hops": [{"ttl": 1, "address": "127.0.0.2", "rtt": 0.0004}, None, None],
}


@dataclass(frozen=True)
class Seeded:
    name: str
    state: str
    """The state the page must show."""
    statuses: list[str]
    """Its results, oldest first: up, degraded (up and slow), down or timeout."""
    tags: list[str] = field(default_factory=list)
    status: str = "active"
    monitor_id: str | None = None
    source: str = "api"
    module: str = "tcp_slow"
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    interval: float = 60.0

    @property
    def id(self) -> str:
        return self.monitor_id or f"tcpm_{self.name.replace('-', '')[:16].ljust(16, '0')}"


MONITORS = [
    Seeded("homepage", "up", ["up"] * 12, ["shop"]),
    Seeded("checkout-api", "down", ["up"] * 26 + ["down"] * 4, ["shop"]),
    Seeded("search", "timeout", ["up"] * 5 + ["timeout"], ["shop"]),
    Seeded("payments", "degraded", ["up"] * 8 + ["degraded"] * 2, ["shop", "payments"]),
    Seeded("new-monitor", "never", []),
    Seeded("db-primary", "maintenance", ["up"] * 10, ["infra"], "maintenance"),
    Seeded("old-service", "disabled", ["up", "down", "up"], ["infra"], "disabled"),
]


def _result(monitor_id: str, status: str, at: float, index: int) -> ResultRecord:
    if status in ("up", "degraded"):
        rt = 0.3 if status == "degraded" else 0.020 + 0.005 * (index % 5)
        return ResultRecord(monitor_id, at, "up", rt, None, None, degraded=status == "degraded")
    reason = "connect_refused" if status == "down" else "timeout"
    details: dict[str, Any] = {"traceroute": TRACE} if status == "down" else {}
    error = "connection refused by 127.0.0.1:9" if status == "down" else "timed out after 5s"
    return ResultRecord(monitor_id, at, status, None, reason, error, attempts=3, details=details)  # type: ignore[arg-type]


def seed(path: Path, now: float, monitors: list[Seeded] = MONITORS) -> None:
    """Create the database at `path` as the exporter would, with `monitors` and their results
    (the newest 30 s before `now`, one per interval)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        conn.execute("BEGIN")
        for m in monitors:
            record = MonitorRecord(
                id=m.id,
                kind="tcp",
                source="config" if m.source == "config" else "api",
                name=m.name,
                module=m.module,
                target=m.target or f"127.0.0.1:{9000 + len(m.name)}",
                interval=m.interval,
                timeout=None,
                status=m.status,
                created_at=now - 86400,
                updated_at=now - 86400,
                labels=m.labels,
                spec={"tags": m.tags} if m.tags else {},
            )
            insert_monitor(conn, record)
            count = len(m.statuses)
            for i, status in enumerate(m.statuses):
                at = now - 30 - (count - 1 - i) * m.interval
                insert_result(conn, _result(m.id, status, at, i))
        conn.execute("COMMIT")
    finally:
        conn.close()
