"""The running exporter: the config in force, the history, the self-metrics, the monitor
engine, and reloading."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from aiohttp import web

from .config import Config, ConfigError, describe_unsupported, load_config
from .history import History
from .logs import fields
from .monitors.options import MonitorOptions
from .probers import get_prober
from .probing import Traceroutes
from .selfmetrics import SelfMetrics

logger = logging.getLogger("sonde_exporter")


class Exporter:
    def __init__(
        self,
        config_file: Path,
        config: Config,
        timeout_offset: float,
        history_limit: int,
        monitors: MonitorOptions | None = None,
    ) -> None:
        self.config_file = config_file
        self.timeout_offset = timeout_offset
        self.history = History(history_limit)
        self.enable_debug = True
        """--web.enable-debug: whether /probe?debug=true and /logs answer."""
        self.metrics = SelfMetrics()
        self.traceroutes = Traceroutes()
        """traceroute_on_error's caches, shared by /probe and the monitors."""
        self.monitor_options = monitors or MonitorOptions()
        self.monitors = self.monitor_options.engine(config, self.metrics.registry, self.traceroutes)
        self._use(config)
        self.metrics.config_loaded(True, time.time())
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[None]] = set()

    @classmethod
    def from_file(
        cls,
        config_file: Path,
        timeout_offset: float = 0.5,
        history_limit: int = 100,
        monitors: MonitorOptions | None = None,
    ) -> Exporter:
        return cls(config_file, load_config(config_file), timeout_offset, history_limit, monitors)

    async def reload(self) -> None:
        """Swap in the file's config; on error keep the old one and raise ConfigError.

        The file is read and validated in a thread, so probes in flight are not stalled by
        it; reloads run one at a time, so the last one requested is the one that stays.
        Probes keep the module they started with: the swap is one assignment.
        """
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, self.config_file)
            except ConfigError as exc:
                self.metrics.config_loaded(False, time.time())
                logger.error(
                    "Error reloading config", extra=fields(file=self.config_file, err=str(exc))
                )
                raise
            self._use(config)
            self.metrics.config_loaded(True, time.time())
            await self.monitors.apply_config(config)
            logger.info(
                "Loaded config file",
                extra=fields(file=self.config_file, modules=len(config.modules)),
            )

    def _use(self, config: Config) -> None:
        """Put `config` in force: its probers imported, its unsupported modules shown."""
        for module in config.modules.values():
            if module.supported:  # import now, so that no probe pays for the import
                get_prober(module.prober)
        self.config = config
        gauge = self.metrics.unsupported_modules
        gauge.clear()
        for name, prober in config.unsupported.items():
            gauge.labels(name, prober).set(1)
        if config.unsupported:
            logger.warning(
                "Modules with a prober sonde-exporter does not have; probing them answers 400",
                extra=fields(modules=describe_unsupported(config)),
            )

    def reload_soon(self) -> None:
        """Start a reload from a signal handler; errors are logged and the old config stays."""
        task = asyncio.ensure_future(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._reload_done)

    def _reload_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            with contextlib.suppress(ConfigError):
                task.result()


EXPORTER = web.AppKey("exporter", Exporter)
"""Where the aiohttp application keeps its Exporter."""
