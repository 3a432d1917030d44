"""The TCP and TLS rows: latency by phase and against the timeout (200), certificate expiry
and negotiated version (400)."""

from __future__ import annotations

from .panels import (
    COLORED_CELLS,
    Panel,
    against_timeout,
    column,
    hide_columns,
    panel,
    prop,
    row,
    sort_by,
    target,
    thresholds,
    timeseries,
)
from .queries import PROBE, probed
from .tables import labels_table


def latency_row(y: int) -> list[Panel]:
    return [
        row(200, "Latency", y),
        timeseries(
            201,
            "TCP latency by phase",
            [
                target(
                    probed(f"probe_tcp_duration_seconds{{{PROBE}}}"), legend="{{target}} {{phase}}"
                )
            ],
            (0, y + 1, 12, 8),
            description="Time spent in each phase of the TCP probe (resolve, connect, tls, "
            "query), stacked: the top of each stack is the whole probe.",
            unit="s",
            style="stacked",
        ),
        timeseries(
            202,
            "TCP handshake round trip (kernel)",
            [target(probed(f"probe_tcp_rtt_seconds{{{PROBE}}}"), legend="{{target}}")],
            (12, y + 1, 12, 8),
            description="The kernel's own round-trip measure of the TCP handshake (TCP_INFO); "
            "unaffected by the exporter's load.",
            unit="s",
        ),
        against_timeout(
            203,
            "Probe duration against timeout",
            "probe_duration_seconds",
            (0, y + 9, 24, 8),
            description="How long each probe took, and the timeout it ran under (dashed): "
            "the module's timeout capped by the scrape timeout minus --timeout-offset. A probe "
            "that reaches its timeout fails.",
        ),
    ]


def tls_row(y: int) -> list[Panel]:
    return [
        row(400, "TLS", y),
        panel(
            401,
            "table",
            "TLS certificate days left",
            [
                target(
                    probed(f"(probe_ssl_earliest_cert_expiry{{{PROBE}}} - time()) / 86400"),
                    instant=True,
                )
            ],
            (0, y + 1, 16, 8),
            description="Days until the first certificate the target sent expires. The alert "
            "SondeCertificateExpiringSoon fires below 14.",
            unit="none",
            defaults=thresholds(("red", None), ("orange", 7), ("green", 14)),
            overrides=[
                column(
                    "Value",
                    prop("displayName", "Days left"),
                    prop("decimals", 1),
                    COLORED_CELLS,
                )
            ],
            options=sort_by("Days left"),
            transformations=[hide_columns("Time")],
        ),
        labels_table(
            402,
            "TLS version",
            probed(f"probe_tls_version_info{{{PROBE}}} == 1"),
            (16, y + 1, 8, 8),
            description="TLS version negotiated by the latest probe of each target.",
            hide=("job", "instance"),
        ),
    ]
