"""One SQLite file: a writer thread that batches every change, a reader thread for queries.

All changes go through one queue to one connection, so SQLite never sees two writers, and
results that arrive within LINGER of each other share a transaction (one fsync). A change is acknowledged (its
future resolves) only after its transaction committed with synchronous=FULL, so what was
acknowledged survives a kill -9. Reads use their own connection: in WAL mode they never wait
for the writer. When the file cannot be opened or written the database turns unavailable,
says why, and tries again every `retry_interval` seconds; callers get StorageUnavailable.
A change that fails on its own (a constraint, a bad value, a bug in it) is undone alone, its
caller gets its error and the log a line; anything else the writer did not expect turns the
database unavailable as above: the writer never dies and no caller waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..logs import fields
from .schema import SchemaTooNew, migrate
from .store import StorageStats, StorageUnavailable

logger = logging.getLogger("sonde_exporter.storage")
T = TypeVar("T")
Change = Callable[[sqlite3.Connection], Any]

BATCH_LIMIT = 1000
"""Most changes in one transaction: a burst of results is written in a few commits."""

LINGER = 0.1
"""Seconds a change nobody waits for (change_soon: a check's result) may wait for others to
share its transaction. Each commit costs an fsync and two thread hops, several times the CPU
of a check: at 10,000 monitors a minute, results arriving one by one would each pay it. A
change someone awaits (change: the API's) is written at once, with whatever is queued."""


_FILE_TROUBLE = (sqlite3.OperationalError, sqlite3.InternalError)
"""sqlite3 errors of the file or the connection (I/O, disk full, locked, closed), not of the
change that met them; plain sqlite3.DatabaseError (a corrupt file) is one too."""


def _own_fault(exc: Exception) -> bool:
    """Whether `exc` is a change's own failure, which undoing its savepoint contains."""
    if not isinstance(exc, sqlite3.Error):
        return True
    return not isinstance(exc, _FILE_TROUBLE) and type(exc) is not sqlite3.DatabaseError


def _why(exc: BaseException) -> str:
    """One line for the log: the error's type and the first line of its message. (Errors of
    the rows modules name an ID at most, never a stored value.)"""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class Database:
    """The SQLite machinery under SqliteStore: one writer, one reader, reopening."""

    def __init__(
        self,
        path: str,
        retry_interval: float = 5.0,
        observe_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.path = path
        self.observe_commit = observe_commit
        """Gets the seconds each transaction took to commit (for a latency histogram)."""
        self.retry_interval = retry_interval
        self.stats = StorageStats()
        self.error: str | None = "not opened yet"
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sonde-db-writer")
        # In memory there is one connection, so reads queue behind writes in the same thread.
        self._reader_thread = (
            self._writer_thread
            if path == ":memory:"
            else ThreadPoolExecutor(1, thread_name_prefix="sonde-db-reader")
        )
        self._write: sqlite3.Connection | None = None
        self._read: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[tuple[Change, asyncio.Future[Any]]] = asyncio.Queue()
        self._awaited = asyncio.Event()
        """Set when a change someone awaits is queued: the writer stops lingering."""
        self._tasks: list[asyncio.Task[None]] = []
        self._on_available: list[Callable[[], None]] = []
        self._closed = False

    @property
    def available(self) -> bool:
        return self.error is None

    def when_available(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the event loop) each time the database (re)opens."""
        self._on_available.append(callback)

    async def start(self) -> None:
        """Open the file (or note why not) and start the writer; never raises for the file."""
        await self._open()
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="sonde-db-writer"),
            asyncio.create_task(self._reopen_loop(), name="sonde-db-reopen"),
        ]

    async def close(self) -> None:
        """Write what is queued, then close; later changes get StorageUnavailable. Closing
        again does nothing."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.available and not self._queue.empty():
            await self._write_batch(self._drain())
        self._fail_queued("the database is closed")
        self.error = "closed"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer_thread, self._close_writer)
        await loop.run_in_executor(self._reader_thread, self._close_reader)
        self._writer_thread.shutdown()
        self._reader_thread.shutdown()  # the same pool in memory: shutting down twice is fine

    # --- changes and queries -------------------------------------------------------------

    async def change(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run `change` in the writer's next transaction; return once it is committed."""
        if not self.available:
            raise StorageUnavailable(self.error)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((change, future))
        self._awaited.set()
        return await future

    def change_soon(self, change: Change) -> asyncio.Future[Any]:
        """Queue `change` without waiting; the future says when (or whether) it committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.available:
            future.set_exception(StorageUnavailable(self.error))
        else:
            self._queue.put_nowait((change, future))
        return future

    async def query(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run `read` on the reader connection (a consistent snapshot, never blocked)."""
        if not self.available:
            raise StorageUnavailable(self.error)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader_thread, self._run_read, read)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"reading {self.path}: {exc}") from None

    def size_bytes(self) -> int:
        """The file and its WAL on disk (0 in memory)."""
        if self.path == ":memory:":
            return 0
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += Path(self.path + suffix).stat().st_size
        return total

    # --- the writer ------------------------------------------------------------------------

    def _drain(self) -> list[tuple[Change, asyncio.Future[Any]]]:
        batch: list[tuple[Change, asyncio.Future[Any]]] = []
        while not self._queue.empty() and len(batch) < BATCH_LIMIT:
            batch.append(self._queue.get_nowait())
        return batch

    async def _write_loop(self) -> None:
        """Never ends but by cancellation: _write_batch settles every future it takes."""
        while True:
            first = await self._queue.get()
            if not self._awaited.is_set() and self._queue.qsize() < BATCH_LIMIT:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LINGER):
                        await self._awaited.wait()
            self._awaited.clear()
            batch = [first, *self._drain()]
            if not self.available:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StorageUnavailable(self.error))
                continue
            writing = asyncio.ensure_future(self._write_batch(batch))
            try:
                await asyncio.shield(writing)
            except asyncio.CancelledError:  # close(): finish the batch begun, answer its callers
                await writing
                raise

    async def _write_batch(self, batch: list[tuple[Change, asyncio.Future[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        changes = [change for change, _ in batch]
        try:
            outcomes = await loop.run_in_executor(self._writer_thread, self._commit, changes)
        except Exception as exc:  # the transaction failed as a whole: nothing was committed
            reason = str(exc) if isinstance(exc, sqlite3.Error) else _why(exc)
            self._lost(f"writing {self.path}: {reason}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(StorageUnavailable(self.error))
            return
        elapsed = time.perf_counter() - started
        self.stats.transactions += 1
        self.stats.write_seconds += elapsed
        if self.observe_commit is not None:
            self.observe_commit(elapsed)
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                self.stats.writes += 1
            else:
                logger.warning("A database change failed", extra=fields(err=_why(value)))
            if future.done():  # its caller was cancelled; the change is committed anyway
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _commit(self, changes: list[Change]) -> list[tuple[bool, Any]]:
        """In the writer thread: every change in one transaction, each in a savepoint so that
        one failed change (a constraint, a bad value) does not undo the others. Trouble with
        the file, or with the savepoints themselves, fails the whole transaction."""
        conn = self._write
        if conn is None:
            raise sqlite3.OperationalError("the database is not open")
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for change in changes:
                conn.execute("SAVEPOINT change")
                try:
                    outcomes.append((True, change(conn)))
                except Exception as exc:
                    if not _own_fault(exc):
                        raise
                    conn.execute("ROLLBACK TO change")
                    outcomes.append((False, exc))
                conn.execute("RELEASE change")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _run_read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._read
        if conn is None:
            raise sqlite3.OperationalError("the database is not open")
        return read(conn)

    # --- opening, losing and reopening --------------------------------------------------------

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer_thread, self._open_writer)
            await loop.run_in_executor(self._reader_thread, self._open_reader)
        except (sqlite3.Error, OSError, SchemaTooNew) as exc:
            self._lost(f"cannot open {self.path}: {exc}")
            return
        was_down, self.error = self.error, None
        logger.info("Opened the database", extra=fields(path=self.path))
        if was_down is not None:
            for callback in self._on_available:
                callback()

    def _open_writer(self) -> None:
        self._close_writer()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._uri(), uri=self.path != ":memory:", isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            if self.path != ":memory:":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS write_probe (x)")  # fails read-only
        except BaseException:
            conn.close()
            raise
        self._write = conn

    def _open_reader(self) -> None:
        self._close_reader()
        if self.path == ":memory:":
            self._read = self._write
            return
        conn = sqlite3.connect(self._uri(), uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA foreign_keys = ON")
        self._read = conn

    def _uri(self) -> str:
        if self.path == ":memory:":
            return ":memory:"
        return Path(self.path).absolute().as_uri()

    def _close_writer(self) -> None:
        if self._write is not None:
            self._write.close()
            self._write = None

    def _close_reader(self) -> None:
        if self._read is not None and self._read is not self._write:
            self._read.close()
        self._read = None

    def _lost(self, why: str) -> None:
        if self.error != why:
            logger.error("The database is unavailable", extra=fields(path=self.path, err=why))
        self.error = why
        self.stats.write_errors += 1
        self.stats.last_error = why

    def _fail_queued(self, why: str) -> None:
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(StorageUnavailable(why))

    async def _reopen_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            if not self.available:
                await self._open()
