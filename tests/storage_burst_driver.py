"""Writes to a sonde-exporter database as fast as it can and prints what was acknowledged.

Started by tests/test_monitors_process.py as `python storage_burst_driver.py FILE`, then
killed with SIGKILL mid-burst. It uses the exporter's own Database and SQL functions, as the
engine and the management API do: it creates monitors and results, 64 changes in flight at a
time (so the writer batches them), and prints one line per change the moment its
`await db.change(...)` returned, which is what "acknowledged" means:

    monitor tcpm_burst3
    result 1234

Output is line-buffered and flushed per line: a line on stdout was acknowledged first.
"""

from __future__ import annotations

import asyncio
import sys
import time

from sonde_exporter.storage import Database, MonitorRecord, ResultRecord, monitor_rows, result_rows

IN_FLIGHT = 64


def monitor(index: int) -> MonitorRecord:
    now = time.time()
    return MonitorRecord(
        id=f"tcpm_burst{index}",
        kind="tcp",
        source="api",
        name=f"burst{index}",
        module="tcp",
        target="127.0.0.1:9",
        interval=60.0,
        timeout=None,
        status="active",
        created_at=now,
        updated_at=now,
    )


async def save_monitor(db: Database, index: int) -> str:
    record = monitor(index)
    await db.change(lambda c: monitor_rows.insert_monitor(c, record))
    return f"monitor {record.id}"


async def save_result(db: Database, index: int) -> str:
    record = ResultRecord(
        monitor_id=f"tcpm_burst{index % 8}",
        checked_at=time.time(),
        status="up",
        response_time=0.001,
        reason=None,
        error=None,
    )
    stored = await db.change(lambda c: result_rows.insert_result(c, record))
    return f"result {stored.seq}"


async def main(path: str) -> None:
    db = Database(path)
    await db.start()
    if not db.available:
        sys.exit(f"cannot open {path}: {db.error}")
    for index in range(8):
        print(await save_monitor(db, index), flush=True)
    pending: set[asyncio.Task[str]] = set()
    count = 0
    while True:  # until killed
        while len(pending) < IN_FLIGHT:
            count += 1
            # Now and then a monitor among the results: both kinds of rows are acknowledged.
            job = save_monitor(db, count) if count % 97 == 0 else save_result(db, count)
            pending.add(asyncio.create_task(job))
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            print(task.result(), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
