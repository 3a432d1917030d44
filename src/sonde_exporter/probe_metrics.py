"""The metrics of one probe, rendered straight to the Prometheus text format.

A probe emits a handful of gauges. Building a prometheus_client CollectorRegistry for each
request costs more than the probe itself on loopback, so gauges are declared once at import
(`ProbeGauge`) and each probe only appends samples (`ProbeMetrics.set`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProbeGauge:
    """A metric family: name, help text and label names, declared once per process."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    header: str = field(init=False, repr=False, compare=False)
    # The text around the sample values, built once: `name ` without labels; with labels
    # `name{a="`, then `",b="` between values, then `"} `.
    _open: str = field(init=False, repr=False, compare=False)
    _joins: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        object.__setattr__(self, "header", f"# HELP {self.name} {text}\n# TYPE {self.name} gauge\n")
        if not self.labels:
            object.__setattr__(self, "_open", f"{self.name} ")
            object.__setattr__(self, "_joins", ())
            return
        first, *rest = self.labels
        object.__setattr__(self, "_open", f'{self.name}{{{first}="')
        object.__setattr__(self, "_joins", (*(f'",{name}="' for name in rest), '"} '))


_INF = float("inf")


def format_value(value: float) -> str:
    if type(value) is float:  # the common cases first: a probe renders a dozen of these
        if value.is_integer():
            return str(int(value)) if -1e15 < value < 1e15 else repr(value)
        if -_INF < value < _INF:
            return repr(value)
    elif type(value) is int:
        return str(value)
    if value != value:  # NaN
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def escape_label(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


class ProbeMetrics:
    """Samples of one probe, in the order their families were first set."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: dict[ProbeGauge, dict[tuple[str, ...], float]] = {}

    def set(self, gauge: ProbeGauge, value: float, *label_values: str) -> None:
        if len(label_values) != len(gauge.labels):
            raise ValueError(f"{gauge.name} takes labels {gauge.labels}, got {label_values}")
        self._samples.setdefault(gauge, {})[label_values] = value

    def families(self) -> Iterator[tuple[ProbeGauge, dict[tuple[str, ...], float]]]:
        """Each family set, with its samples: label values -> value (for re-labelling)."""
        return iter(self._samples.items())

    def render(self) -> str:
        out: list[str] = []
        add = out.append
        for gauge, samples in self._samples.items():
            opening = gauge._open
            if not gauge.labels:  # one sample, with the header in the same string
                add(f"{gauge.header}{opening}{format_value(samples[()])}\n")
                continue
            add(gauge.header)
            joins = gauge._joins
            for label_values, value in samples.items():
                if len(label_values) == 1:
                    add(
                        f"{opening}{escape_label(label_values[0])}{joins[0]}{format_value(value)}\n"
                    )
                    continue
                add(opening)
                for label_value, join in zip(label_values, joins, strict=True):
                    add(escape_label(label_value))
                    add(join)
                add(f"{format_value(value)}\n")
        return "".join(out)


# Metrics every probe carries (names as blackbox_exporter's).
PROBE_SUCCESS = ProbeGauge("probe_success", "Displays whether or not the probe was a success")
PROBE_DURATION = ProbeGauge(
    "probe_duration_seconds", "Returns how long the probe took to complete in seconds"
)
PROBE_TIMEOUT = ProbeGauge("probe_timeout_seconds", "The timeout applied to this probe in seconds")
PROBE_FAILURE_REASON = ProbeGauge(
    "probe_failure_reason",
    "Set to 1 with the reason of a failed probe; absent when the probe succeeded",
    ("reason",),
)
DNS_LOOKUP_TIME = ProbeGauge(
    "probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds"
)
IP_PROTOCOL = ProbeGauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6")
IP_ADDR_HASH = ProbeGauge(
    "probe_ip_addr_hash",
    "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
)
