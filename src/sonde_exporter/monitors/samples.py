"""A check's probe metrics as kept until the monitor's next check: plain tuples of strings
and floats, which the garbage collector stops tracking.

10,000 monitors each hold their last check's metrics for a whole interval. As ProbeMetrics
(a dict of dicts per check) they would add a dozen tracked objects per check to the oldest
generation, and every full collection would walk them all while the event loop waits: the
scheduling lag's tail. Frozen, a check leaves nothing for the collector to walk.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..probe_metrics import ProbeGauge, ProbeMetrics

GaugeKey = tuple[str, str, tuple[str, ...]]
Samples = tuple[tuple[GaugeKey, tuple[tuple[tuple[str, ...], float], ...]], ...]

_GAUGES: dict[GaugeKey, ProbeGauge] = {}
"""Every gauge seen, by name, help and label names: a few dozen at most (modules declare
their own only through their config, which is bounded)."""


def freeze(metrics: ProbeMetrics) -> Samples:
    out = []
    for gauge, samples in metrics.families():
        key = (gauge.name, gauge.help, gauge.labels)
        _GAUGES.setdefault(key, gauge)
        out.append((key, tuple(samples.items())))
    return tuple(out)


def thaw(
    samples: Samples,
) -> Iterator[tuple[ProbeGauge, tuple[tuple[tuple[str, ...], float], ...]]]:
    """Each family with its samples (label values, value), in the order they were set."""
    for key, items in samples:
        yield _GAUGES[key], items
