"""The running exporter: the config in force, the history, the self-metrics, and reloading."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from aiohttp import web

from .config import Config, ConfigError, load_config
from .history import History
from .logs import fields
from .selfmetrics import SelfMetrics

logger = logging.getLogger("sonde_exporter")


class Exporter:
    def __init__(
        self, config_file: Path, config: Config, timeout_offset: float, history_limit: int
    ) -> None:
        self.config_file = config_file
        self.config = config
        self.timeout_offset = timeout_offset
        self.history = History(history_limit)
        self.metrics = SelfMetrics()
        self.metrics.config_loaded(True, time.time())

    @classmethod
    def from_file(
        cls, config_file: Path, timeout_offset: float = 0.5, history_limit: int = 100
    ) -> Exporter:
        return cls(config_file, load_config(config_file), timeout_offset, history_limit)

    def reload(self) -> None:
        """Swap in the file's config; on error keep the old one and raise ConfigError."""
        try:
            config = load_config(self.config_file)
        except ConfigError as exc:
            self.metrics.config_loaded(False, time.time())
            logger.error(
                "Error reloading config", extra=fields(file=self.config_file, err=str(exc))
            )
            raise
        self.config = config
        self.metrics.config_loaded(True, time.time())
        logger.info(
            "Loaded config file", extra=fields(file=self.config_file, modules=len(config.modules))
        )


EXPORTER = web.AppKey("exporter", Exporter)
"""Where the aiohttp application keeps its Exporter."""
