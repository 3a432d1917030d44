"""The SQLite database: monitors, their check results and roll-ups, and API keys."""

from .database import Database, StorageUnavailable
from .records import MonitorRecord, ResultRecord, result_id

__all__ = ["Database", "MonitorRecord", "ResultRecord", "StorageUnavailable", "result_id"]
