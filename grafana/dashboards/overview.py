"""The overview rows: whether each target is up and why not (100 status), and failure
reasons over time (300)."""

from __future__ import annotations

from .panels import (
    UP_DOWN,
    Panel,
    panel,
    row,
    stat,
    target,
    thresholds,
    timeseries,
)
from .queries import PROBE, probed
from .tables import labels_table, outcome_table


def status_row(y: int) -> list[Panel]:
    success_over_range = probed(f"avg_over_time(probe_success{{{PROBE}}}[$__range])")
    return [
        row(100, "Status", y),
        stat(
            101,
            "Targets up",
            [target(f"count(probe_success{{{PROBE}}} == 1) or vector(0)", instant=True)],
            (0, y + 1, 4, 4),
            description="Targets whose latest probe succeeded.",
            defaults=thresholds(("green", None)),
        ),
        stat(
            102,
            "Targets down",
            [target(f"count(probe_success{{{PROBE}}} == 0) or vector(0)", instant=True)],
            (0, y + 5, 4, 4),
            description="Targets whose latest probe failed; the table says why.",
            defaults=thresholds(("green", None), ("red", 1)),
        ),
        outcome_table(
            103,
            "Status per target",
            ("probe_success", "probe_failure_reason"),
            (4, y + 1, 14, 8),
            description="Latest result of every probe and, when it failed, the failure reason "
            "(the documented fixed set: connect_refused, connect_timeout, tls_verify, "
            "packet_loss, icmp_permission, smtp_auth, not_delivered, ...). instance is the "
            "exporter that ran the probe; in jobs with the classic blackbox_exporter relabeling "
            "it is the target, and module shows the job's name.",
            name="Status",
            mappings=UP_DOWN,
        ),
        labels_table(
            104,
            "Probe scrapes failing",
            probed(
                f'(up{{{PROBE}, module!=""}} == 0) or (up{{job=~"$job", instance=~"$instance"}} '
                f"== 0 and on(job) probe_success{{{PROBE}}})"
            ),
            (18, y + 1, 6, 8),
            description="Probe jobs Prometheus could not scrape: no result at all, so these "
            "targets are missing from the status table. Usually the exporter is down or the "
            "job's scrape_timeout is shorter than the module's timeout. Empty when all is well. "
            "A job with the classic blackbox_exporter relabeling (no module label) shows here "
            "while another of its targets still reports a result.",
        ),
        panel(
            105,
            "bargauge",
            "Availability over the time range",
            [
                target(
                    f"avg by (target, module) ({success_over_range})",
                    legend="{{target}} ({{module}})",
                    instant=True,
                )
            ],
            (0, y + 9, 24, 6),
            description="Share of successful probes per target over the dashboard's time range.",
            unit="percentunit",
            defaults={
                "min": 0,
                "max": 1,
                **thresholds(("red", None), ("orange", 0.95), ("green", 0.999)),
            },
            options={"displayMode": "basic", "orientation": "horizontal", "showUnfilled": True},
        ),
    ]


def failures_row(y: int) -> list[Panel]:
    return [
        row(300, "Failures", y),
        timeseries(
            301,
            "Failure reasons over time",
            [
                target(
                    f"count by (reason) (probe_failure_reason{{{PROBE}}} == 1)",
                    legend="{{reason}}",
                )
            ],
            (0, y + 1, 24, 8),
            description="How many targets fail, by failure reason (TCP, TLS, ICMP and email "
            "alike: e.g. connect_refused, tls_verify, timeout, packet_loss, icmp_permission, "
            "smtp_rejected, receive_auth, not_delivered).",
            style="bars",
        ),
    ]
