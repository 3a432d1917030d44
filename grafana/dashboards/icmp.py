"""The ICMP row (500): loss, round-trip time, jitter, phases and hop limit per target."""

from __future__ import annotations

from .panels import COLORED_CELLS, Panel, prop, row, sort_by, target, threshold_steps, timeseries
from .queries import PER_TARGET, PROBE, probed
from .tables import Column, latest_table


def icmp_row(y: int) -> list[Panel]:
    # Any loss orange, from the SondeIcmpPacketLoss threshold (10%) on red.
    loss_steps = threshold_steps(("green", None), ("orange", 0.0001), ("red", 0.1))
    columns = [
        Column("A", f"{PER_TARGET} (probe_icmp_packets_sent{{{PROBE}}})", "Sent", "none", 0),
        Column(
            "B", f"{PER_TARGET} (probe_icmp_packets_received{{{PROBE}}})", "Received", "none", 0
        ),
        Column(
            "C", f"{PER_TARGET} (probe_icmp_duplicate_replies{{{PROBE}}})", "Duplicates", "none", 0
        ),
        Column(
            "D",
            f"{PER_TARGET} (probe_icmp_packet_loss_ratio{{{PROBE}}})",
            "Loss",
            "percentunit",
            1,
            (prop("thresholds", loss_steps), COLORED_CELLS),
        ),
        Column(
            "E", f'{PER_TARGET} (probe_icmp_rtt_seconds{{{PROBE}, stat="avg"}})', "RTT avg", "s"
        ),
        Column("F", f"{PER_TARGET} (probe_icmp_jitter_seconds{{{PROBE}}})", "Jitter", "s"),
        Column(
            "G", f"{PER_TARGET} (probe_icmp_reply_hop_limit{{{PROBE}}})", "Hop limit", "none", 0
        ),
    ]
    return [
        row(500, "ICMP", y),
        timeseries(
            501,
            "ICMP packet loss",
            [
                target(
                    probed(f"probe_icmp_packet_loss_ratio{{{PROBE}}}"),
                    legend="{{target}} ({{module}})",
                )
            ],
            (0, y + 1, 12, 8),
            description="Share of each probe's echo requests that got no reply (config.yml's "
            "icmp module sends 3, so steps of 1/3). No point where a probe sent nothing: it "
            "failed before sending, and the status table says why. The alert "
            "SondeIcmpPacketLoss fires above 10% over 5 minutes.",
            unit="percentunit",
            defaults={"min": 0, "max": 1},
        ),
        timeseries(
            502,
            "ICMP round-trip time",
            [
                target(
                    probed(f'probe_icmp_rtt_seconds{{{PROBE}, stat=~"min|avg|max"}}'),
                    legend="{{target}} {{stat}}",
                )
            ],
            (12, y + 1, 12, 8),
            description="Minimum, mean and maximum round-trip time over the replies of each "
            "probe, from the kernel's receive timestamps (not inflated by a busy exporter). "
            "The alert SondeIcmpRttHigh fires when the mean stays above 200ms.",
            unit="s",
        ),
        timeseries(
            503,
            "ICMP jitter",
            [
                target(probed(f"probe_icmp_jitter_seconds{{{PROBE}}}"), legend="{{target}} jitter"),
                target(
                    probed(f'probe_icmp_rtt_seconds{{{PROBE}, stat="stddev"}}'),
                    ref="B",
                    legend="{{target}} stddev",
                ),
            ],
            (0, y + 9, 8, 8),
            description="Jitter: mean absolute difference between the RTTs of consecutive "
            "replies of a probe (needs two replies). Standard deviation of the probe's RTTs "
            "for comparison. The alert SondeIcmpJitterHigh fires when jitter stays above 30ms.",
            unit="s",
        ),
        timeseries(
            504,
            "ICMP time by phase",
            [
                target(
                    probed(f"probe_icmp_duration_seconds{{{PROBE}}}"), legend="{{target}} {{phase}}"
                )
            ],
            (8, y + 9, 8, 8),
            description="blackbox_exporter's ICMP phases: resolve (name lookup), setup (socket "
            "and request building) and rtt, which is the mean round trip of the replies, not "
            "the time the probe spent waiting (that is probe_duration_seconds).",
            unit="s",
        ),
        timeseries(
            505,
            "ICMP reply hop limit",
            [target(probed(f"probe_icmp_reply_hop_limit{{{PROBE}}}"), legend="{{target}}")],
            (16, y + 9, 8, 8),
            description="TTL (IPv4) or hop limit (IPv6) of the last reply: the responder's "
            "starting value minus the routers on the way back. A step means the return path "
            "changed.",
            unit="none",
            defaults={"decimals": 0},
        ),
        latest_table(
            506,
            "ICMP per target (latest probe)",
            columns,
            (0, y + 17, 24, 8),
            description="The latest ICMP probe of each target: echo requests sent and answered, "
            "duplicate replies, loss, mean RTT, jitter and the reply's hop limit. Empty cells: "
            "the probe failed before sending or got no reply (the status table says why).",
            options=sort_by("Loss", desc=True),
        ),
    ]
