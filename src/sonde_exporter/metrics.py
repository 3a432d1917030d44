"""The metrics of one probe, rendered straight to the Prometheus text format.

A probe emits a handful of gauges. Building a prometheus_client CollectorRegistry for each
request costs more than the probe itself on loopback, so gauges are declared once at import
(`Gauge`) and each probe only appends samples (`ProbeMetrics.set`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gauge:
    """A metric family: name, help text and label names, declared once per process."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    header: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        object.__setattr__(self, "header", f"# HELP {self.name} {text}\n# TYPE {self.name} gauge\n")


def format_value(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ProbeMetrics:
    """Samples of one probe, in the order their families were first set."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: dict[Gauge, dict[tuple[str, ...], float]] = {}

    def set(self, gauge: Gauge, value: float, *label_values: str) -> None:
        if len(label_values) != len(gauge.labels):
            raise ValueError(f"{gauge.name} takes labels {gauge.labels}, got {label_values}")
        self._samples.setdefault(gauge, {})[label_values] = value

    def get(self, gauge: Gauge, *label_values: str) -> float | None:
        return self._samples.get(gauge, {}).get(label_values)

    def render(self) -> str:
        out: list[str] = []
        for gauge, samples in self._samples.items():
            out.append(gauge.header)
            for label_values, value in samples.items():
                if label_values:
                    pairs = ",".join(
                        f'{name}="{escape_label(v)}"'
                        for name, v in zip(gauge.labels, label_values, strict=True)
                    )
                    out.append(f"{gauge.name}{{{pairs}}} {format_value(value)}\n")
                else:
                    out.append(f"{gauge.name} {format_value(value)}\n")
        return "".join(out)


# Metrics every probe carries (names as blackbox_exporter's).
PROBE_SUCCESS = Gauge("probe_success", "Displays whether or not the probe was a success")
PROBE_DURATION = Gauge(
    "probe_duration_seconds", "Returns how long the probe took to complete in seconds"
)
PROBE_TIMEOUT = Gauge("probe_timeout_seconds", "The timeout applied to this probe in seconds")
PROBE_FAILURE_REASON = Gauge(
    "probe_failure_reason",
    "Set to 1 with the reason of a failed probe; absent when the probe succeeded",
    ("reason",),
)
DNS_LOOKUP_TIME = Gauge(
    "probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds"
)
IP_PROTOCOL = Gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6")
IP_ADDR_HASH = Gauge(
    "probe_ip_addr_hash",
    "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
)
