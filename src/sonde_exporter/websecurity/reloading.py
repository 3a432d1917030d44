"""The web config in force, and its reloading when the file or a file it names changes.

Files are polled (a stat each, every second): inotify would miss a certificate renewed by a
rename into a watched directory's parent and adds a dependency for no gain. A change is
loaded once the files have stayed the same for one poll, so a certificate and key written
one after the other are read as a pair. A file that does not load keeps the settings in
force, is logged once per distinct error, is retried every poll, and shows on /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..logs import fields
from ..selfmetrics import SelfMetrics
from .basicauth import BasicAuth
from .loader import load_web_config
from .model import WebConfig
from .ratelimit import RateLimiter
from .tlscontext import SwappableContext, swappable

logger = logging.getLogger("sonde_exporter")
POLL_INTERVAL = 1.0

Signature = tuple[tuple[Path, tuple[int, int, int] | None], ...]


def signature(paths: list[Path]) -> Signature:
    out: list[tuple[Path, tuple[int, int, int] | None]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((path, None))
        else:
            out.append((path, (st.st_mtime_ns, st.st_size, st.st_ino)))
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    """What the request guard applies; replaced as a whole on reload."""

    config: WebConfig
    auth: BasicAuth | None
    limiter: RateLimiter | None
    headers: tuple[tuple[str, str], ...]
    allowed_sans: frozenset[str] | None

    @classmethod
    def build(cls, config: WebConfig, previous: Settings | None) -> Settings:
        if previous is not None and previous.config.basic_auth_users == config.basic_auth_users:
            auth = previous.auth  # keep the cache: a certificate renewal costs no bcrypt
        else:
            users = {name: h.get_secret_value() for name, h in config.basic_auth_users.items()}
            auth = BasicAuth(users) if users else None
        limits = config.rate_limit
        limiter = None
        if limits.interval > 0 or limits.per_client is not None:
            old = previous.limiter if previous is not None else None
            # Same limits: keep the buckets, so a reload is not a way to refill them.
            limiter = (
                old
                if old is not None and old.limits == limits
                else RateLimiter(limits, time.monotonic())
            )
        sans = config.tls_server_config.client_allowed_sans
        return cls(
            config=config,
            auth=auth,
            limiter=limiter,
            headers=tuple((k, v) for k, v in config.http_server_config.headers.items() if v),
            allowed_sans=frozenset(sans) if sans else None,
        )


class WebSecurity:
    def __init__(self, config: WebConfig, metrics: SelfMetrics) -> None:
        self.settings = Settings.build(config, None)
        context = config.tls_server_config.context
        self.listener_context: SwappableContext | None = swappable(context) if context else None
        self._metrics = metrics
        self._loaded = signature(config.files())
        self._error: str | None = None
        metrics.web_config_loaded(True, time.time())
        self._log_loaded(config)

    def use(self, config: WebConfig) -> None:
        """Put `config` in force for the next request and the next TLS handshake."""
        context = config.tls_server_config.context
        if (context is None) != (self.listener_context is None):
            raise ConfigError(
                f"{config.file}: tls_server_config: turning TLS on or off needs a restart"
            )
        self.settings = Settings.build(config, self.settings)
        if self.listener_context is not None and context is not None:
            self.listener_context.current = context

    async def reload(self) -> bool:
        path = self.settings.config.file
        seen = signature(self.settings.config.files())
        try:
            config = await asyncio.to_thread(load_web_config, path)
            assert config is not None  # a path was given
            self.use(config)
        except ConfigError as exc:
            self._metrics.web_config_loaded(False, time.time())
            if str(exc) != self._error:  # retried every poll: log each distinct error once
                self._error = str(exc)
                logger.error(
                    "Error reloading web config; the previous one stays in force",
                    extra=fields(file=path, err=str(exc)),
                )
            return False
        self._error = None
        files = config.files()  # stat'ed before reading: a change during the load shows
        self._loaded = seen if [p for p, _ in seen] == files else signature(files)
        self._metrics.web_config_loaded(True, time.time())
        self._log_loaded(config)
        return True

    @staticmethod
    def _log_loaded(config: WebConfig) -> None:
        limits = config.rate_limit
        logger.info(
            "Loaded web config file",
            extra=fields(
                file=config.file,
                tls=config.tls_server_config.enabled,
                basic_auth_users=len(config.basic_auth_users),
                rate_limit=limits.interval > 0 or limits.per_client is not None,
            ),
        )

    async def watch(self, interval: float = POLL_INTERVAL) -> None:
        """Reload when the files changed and then held still for one poll, or while the
        last attempt failed."""
        previous = self._loaded
        while True:
            await asyncio.sleep(interval)
            current = signature(self.settings.config.files())
            if self._error is not None or (current != self._loaded and current == previous):
                await self.reload()
            previous = current
