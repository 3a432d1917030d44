"""The monitor engine's command-line settings, and building the engine from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from ..config import Config
from ..probing import Traceroutes
from ..storage import SqliteStore
from .discovery import ExporterAddress
from .engine import MonitorEngine, Retention
from .health import EngineCollector, commit_histogram, lag_histogram

DEFAULT_STORAGE_PATH = "data/sonde.db"


@dataclass(frozen=True)
class MonitorOptions:
    storage_path: str = ":memory:"
    """The CLI's default is DEFAULT_STORAGE_PATH; an Exporter built in code keeps nothing."""
    scheduler: bool = True
    max_concurrency: int = 64
    limit: int = 10_000
    """Most monitors of each kind the management API may create."""
    retention: Retention = field(default_factory=Retention)
    storage_retry: float = 5.0
    """Seconds between attempts to reopen a database that could not be opened or written."""
    address: ExporterAddress = field(default_factory=ExporterAddress)
    """Where Prometheus reaches the exporter, for /v1/sd: --web.external-url, else the first
    --web.listen-address (the CLI sets it); built in code, this host at the request's port."""

    def engine(
        self, config: Config, registry: CollectorRegistry, traceroutes: Traceroutes
    ) -> MonitorEngine:
        """The engine, its database, and their health metrics in `registry`."""
        store = SqliteStore(
            self.storage_path,
            retry_interval=self.storage_retry,
            observe_commit=commit_histogram(registry).observe,
        )
        engine = MonitorEngine(
            store,
            config,
            scheduler=self.scheduler,
            max_concurrency=self.max_concurrency,
            retention=self.retention,
            observe_lag=lag_histogram(registry).observe,
            traceroutes=traceroutes,
        )
        registry.register(EngineCollector(engine))
        return engine
