"""`monitors:` in config.yml: checks the exporter schedules itself, declared next to modules."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from .fields import Duration, PlainName, PlainText, Strict, duration_between

MonitorStatus = Literal["active", "maintenance", "disabled"]
"""A monitor's status: the one home of these names (API, OpenAPI, metrics derive from it)."""
StatusAlias = Literal["paused", "inactive"]
STATUS_ALIASES: dict[str, MonitorStatus] = dict.fromkeys(get_args(StatusAlias), "disabled")
"""Names other monitor products use for a monitor that is not checked; stored as disabled."""

RESERVED_LABELS = frozenset(
    {
        "monitor_id",
        "monitor",
        "module",
        "target",
        "job",
        "instance",
        "reason",
        "phase",
        "status",
        "state",
    }
)
"""Label names the monitor series set themselves (and Prometheus' job and instance)."""

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MIN_INTERVAL = 1.0
MAX_INTERVAL = 7 * 86400.0


def check_timeout_fits(timeout: float, interval: float) -> None:
    """A check may not outlast its interval (config.yml's monitors and the API's alike):
    every other tick would be skipped, and the timeout read back would not be the one used."""
    if timeout > interval:
        raise ValueError(
            f"{timeout:g}s is longer than the interval {interval:g}s "
            "(every other tick would be skipped)"
        )


def normalise_status(value: object) -> object:
    """`paused` and `inactive` are accepted and stored as `disabled`."""
    if isinstance(value, str):
        return STATUS_ALIASES.get(value, value)
    return value


Status = Annotated[MonitorStatus, BeforeValidator(normalise_status)]


class MonitorConfig(Strict):
    """One entry under `monitors:`; the prober of its module gives the monitor's kind."""

    name: Annotated[PlainName, Field(min_length=1, max_length=255)]
    module: Annotated[str, Field(min_length=1)]
    target: Annotated[str, Field(max_length=1024)] = ""
    interval: Annotated[Duration, duration_between(MIN_INTERVAL, MAX_INTERVAL, "1s to 7d")]
    timeout: Annotated[Duration, duration_between(0.001, 600.0, "1ms to 10m")] | None = None
    status: Status = "active"
    labels: Annotated[
        dict[str, Annotated[PlainText, Field(max_length=1024)]], Field(default_factory=dict)
    ]

    @model_serializer(mode="wrap")
    def _without_unset_timeout(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Written out (/config) as it could be written in: no `timeout: null`."""
        data: dict[str, Any] = handler(self)
        if data.get("timeout") is None:
            data.pop("timeout", None)
        return data

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"label name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
                )
            if name in RESERVED_LABELS:
                raise ValueError(f"label name {name!r} is set by the exporter itself")
        return labels
