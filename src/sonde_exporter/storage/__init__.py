"""Storage: the MonitorStore contract (store.py), its plain records, and its implementation
on SQLite (sqlite_store.py over database.py and the rows modules)."""

from .database import Database
from .records import ApiKeyRow, MonitorRecord, ResultRecord, result_id
from .sqlite_store import SqliteStore
from .store import Conflict, MonitorStore, StorageUnavailable

__all__ = [
    "ApiKeyRow",
    "Conflict",
    "Database",
    "MonitorRecord",
    "MonitorStore",
    "ResultRecord",
    "SqliteStore",
    "StorageUnavailable",
    "result_id",
]
