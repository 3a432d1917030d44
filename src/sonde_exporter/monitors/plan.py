"""A monitor ready to run: its record with the module, parsed target and timeout resolved once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..config import Config, Module
from ..config.modules import DEFAULT_MONITOR_TIMEOUT
from ..config.tls import TlsConfig
from ..prober_base import TargetError
from ..probers import accept_target
from ..storage import MonitorRecord
from ..storage.secrets import PasswordKey
from .overrides import OverrideError, module_for


@dataclass(frozen=True, slots=True)
class CheckPlan:
    record: MonitorRecord
    module: Module
    parsed: Any
    timeout: float
    series_labels: tuple[tuple[str, str], ...]
    """The labels of its series on /monitors/metrics: monitor_id, monitor, module, target,
    then its own."""

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def scheduled(self) -> bool:
        """Whether the scheduler runs it (maintenance runs too; alerts are silenced)."""
        return self.record.status != "disabled"


class PlanError(Exception):
    """A stored monitor that cannot run with the config in force (its module is gone)."""


class Planner:
    """Builds the plans of one engine: it opens sealed passwords with the engine's password
    key, and keeps the modules of API monitors built against the config in force, by what
    they are built from, so that re-planning every monitor on each change costs a lookup
    each and monitors with the same settings share one module. Another config starts the
    cache afresh: a reload does not keep the old config's modules alive."""

    def __init__(self, passwords: PasswordKey) -> None:
        self.passwords = passwords
        self._config: Config | None = None
        self._modules: dict[tuple[str, str, float | None, str], Module] = {}

    def plan(self, record: MonitorRecord, config: Config) -> CheckPlan:
        """Resolve everything a check needs once, so each tick only runs the prober."""
        if record.source == "api":
            try:
                module = self.api_module(record, config)
            except OverrideError as exc:
                raise PlanError(str(exc)) from None
        else:
            module = _config_module(record, config)
        return _plan_with(record, module)

    def api_module(self, record: MonitorRecord, config: Config) -> Module:
        """The module of a management-API monitor (overrides.py); OverrideError names the
        field."""
        if config is not self._config:
            self._config, self._modules = config, {}
        key = (record.kind, record.module, record.timeout, json.dumps(record.spec, sort_keys=True))
        module = self._modules.get(key)
        if module is None:
            module = module_for(record, config, self.passwords)
            if len(self._modules) >= _API_MODULES_MAX:  # deleted monitors' entries: start afresh
                self._modules.clear()
            self._modules[key] = module
        return module


_API_MODULES_MAX = 100_000


def _plan_with(record: MonitorRecord, module: Module) -> CheckPlan:
    try:
        parsed = accept_target(module.prober, record.target)
    except TargetError as exc:
        raise PlanError(f"target {record.target!r}: {exc}") from None
    timeout = record.timeout
    if timeout is None:
        timeout = module.timeout if module.timeout > 0 else DEFAULT_MONITOR_TIMEOUT
    timeout = min(timeout, record.interval)
    labels = (
        ("monitor_id", record.id),
        ("monitor", record.name),
        ("module", record.module),
        ("target", record.target),
        *sorted(record.labels.items()),
    )
    return CheckPlan(record, module, parsed, timeout, labels)


def stale_modules(old: Config | None, new: Config) -> set[str] | None:
    """The names of the modules whose monitors need new plans when `new` replaces `old`:
    those added, removed or changed. None means every monitor (no plans yet, or the top-level
    ip_filter changed, which the implicit modules of API monitors take). A few dozen model
    comparisons, against 10,000 plans to build."""
    if old is None or old.ip_filter != new.ip_filter:
        return None
    if old is new:
        return set()
    names = old.modules.keys() | new.modules.keys()
    return {n for n in names if not _same_module(old.modules.get(n), new.modules.get(n))}


def _same_module(old: BaseModel | None, new: BaseModel | None) -> bool:
    """Equal settings and the same TLS contexts: the contexts are shared by settings and
    file identity (tlscontexts.py), so a replaced CA or key file shows as a new context."""
    if old is None or new is None:
        return old is new
    return old == new and _contexts(old) == _contexts(new)


def _contexts(model: BaseModel) -> list[int]:
    """The identities of the TLS contexts a model holds (built ones only: a module that does
    not use TLS never builds its context), depth first."""
    found = []
    if isinstance(model, TlsConfig) and "context" in model.__dict__:
        found.append(id(model.__dict__["context"]))  # both configs hold theirs while compared
    for value in model.__dict__.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, BaseModel):
                found += _contexts(item)
    return found


def _config_module(record: MonitorRecord, config: Config) -> Module:
    module = config.modules.get(record.module)
    if module is None or not module.supported:
        raise PlanError(f"module {record.module!r} is not in the config")
    if module.prober != record.kind:
        raise PlanError(f"module {record.module!r} is a {module.prober} module, not {record.kind}")
    return module
