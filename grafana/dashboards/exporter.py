"""The exporter health row (900): the exporter's own metrics, not the probes' results."""

from __future__ import annotations

from .panels import COLORED_CELLS, Panel, column, prop, row, stat, target, timeseries, value_map
from .queries import EXPORTER, IS_SONDE
from .tables import labels_table


def exporter_row(y: int) -> list[Panel]:
    reload_ok = value_map(("1", "green", "OK"), ("0", "red", "FAILED"))
    socket_modes = value_map(
        ("datagram", "green"), ("raw", "green"), ("none", "red", "none (no permission)")
    )
    return [
        row(900, "Exporter health", y),
        timeseries(
            901,
            "Probes per second by module and result",
            [
                target(
                    "sum by (module, result) (rate(sonde_probes_total"
                    f'{{{EXPORTER}, module=~"$module"}}[$__rate_interval]))',
                    legend="{{module}} {{result}}",
                ),
                target(
                    f"sum(rate(sonde_module_unknown_total{{{EXPORTER}}}[$__rate_interval]))",
                    ref="B",
                    legend="unknown module (HTTP 400)",
                ),
            ],
            (0, y + 1, 12, 8),
            description="Probes the exporter ran, whoever asked for them.",
            unit="reqps",
            style="stacked",
        ),
        timeseries(
            902,
            "Probes in flight",
            [target(f"sonde_probes_in_flight{{{EXPORTER}}}", legend="{{instance}}")],
            (12, y + 1, 6, 8),
            description="Probes running at scrape time.",
        ),
        stat(
            903,
            "Last config reload",
            [
                target(
                    f"sonde_config_last_reload_successful{{{EXPORTER}}}",
                    legend="{{instance}}",
                    instant=True,
                ),
            ],
            (18, y + 1, 6, 4),
            description="Whether the last reload (SIGHUP or POST /-/reload) succeeded. After "
            "a failed one the exporter keeps the previous config.",
            defaults={"mappings": [reload_ok]},
            named=True,
        ),
        stat(
            904,
            "Config loaded",
            [
                target(
                    f"sonde_config_last_reload_success_timestamp_seconds{{{EXPORTER}}} * 1000",
                    legend="{{instance}}",
                    instant=True,
                ),
            ],
            (18, y + 5, 6, 4),
            description="When the configuration in force was loaded.",
            unit="dateTimeFromNow",
            colored=False,
            named=True,
        ),
        timeseries(
            905,
            "Probe duration quantiles (exporter side)",
            [
                target(
                    f"histogram_quantile({q}, sum by (le, module) (rate("
                    f'sonde_probe_duration_seconds_bucket{{{EXPORTER}, module=~"$module"}}'
                    "[$__rate_interval])))",
                    ref=ref,
                    legend=f"p{round(q * 100)} {{{{module}}}}",
                )
                for q, ref in ((0.5, "A"), (0.99, "B"))
            ],
            (0, y + 9, 8, 8),
            description="Wall time of the probes the exporter ran, from its own histogram.",
            unit="s",
        ),
        timeseries(
            906,
            "CPU",
            [
                target(
                    f"rate(process_cpu_seconds_total{{{EXPORTER}}}[$__rate_interval]) {IS_SONDE}",
                    legend="{{instance}}",
                )
            ],
            (8, y + 9, 8, 8),
            description="CPU used by the exporter process (1 = one core).",
            unit="percentunit",
        ),
        timeseries(
            907,
            "Memory",
            [
                target(
                    f"process_resident_memory_bytes{{{EXPORTER}}} {IS_SONDE}",
                    legend="{{instance}}",
                )
            ],
            (16, y + 9, 8, 8),
            description="Resident memory of the exporter process.",
            unit="bytes",
        ),
        labels_table(
            908,
            "ICMP socket mode",
            f"sonde_icmp_socket_mode{{{EXPORTER}}} == 1",
            (0, y + 17, 8, 6),
            description="The ICMP socket each exporter uses per IP protocol, chosen at start-up: "
            "datagram (unprivileged: its group is inside net.ipv4.ping_group_range), raw (root "
            "or CAP_NET_RAW; one shared socket per protocol) or none: ICMP probes then fail with "
            "icmp_permission, and SondeIcmpPermissionMissing fires once they do.",
            hide=("job",),
            overrides=[column("mode", prop("mappings", [socket_modes]), COLORED_CELLS)],
        ),
        timeseries(
            909,
            "ICMP socket drops and unmatched replies",
            [
                target(
                    "sum by (instance, ip_protocol) (rate(sonde_icmp_receive_drops_total"
                    f"{{{EXPORTER}}}[$__rate_interval]))",
                    legend="{{instance}} {{ip_protocol}} dropped (buffer full)",
                ),
                target(
                    "sum by (instance, ip_protocol) (rate(sonde_icmp_unmatched_replies_total"
                    f"{{{EXPORTER}}}[$__rate_interval]))",
                    ref="B",
                    legend="{{instance}} {{ip_protocol}} unmatched",
                ),
            ],
            (8, y + 17, 16, 6),
            description="Packets the kernel dropped because a shared ICMP socket's receive "
            "buffer was full (they show up as loss; should stay 0), and echo replies that "
            "matched no running probe: late replies, other programs' pings (raw mode), forgeries.",
            unit="pps",
        ),
        timeseries(
            910,
            "Email: late and stale probe mails",
            [
                target(
                    f"sum by (instance) (increase(sonde_email_late_mails_total{{{EXPORTER}}}[1h]))",
                    legend="{{instance}} late",
                ),
                target(
                    "sum by (instance) "
                    f"(increase(sonde_email_stale_mails_deleted_total{{{EXPORTER}}}[1h]))",
                    ref="B",
                    legend="{{instance}} stale, deleted",
                ),
            ],
            (0, y + 23, 24, 6),
            description="Per hour. Late: mails of this exporter's probes found after their "
            "probe had ended without them (it failed as not_delivered, the mail being slower "
            "than the timeout, or on the receive side). Stale: probe mails older than "
            "stale_after deleted from a mailbox, left by another exporter or from before a "
            "restart.",
        ),
    ]
