"""The email row (600): delivery time, send and delivery results, phases and the receiving
server's Authentication-Results verdicts."""

from __future__ import annotations

from .panels import (
    COLORED_CELLS,
    Panel,
    against_timeout,
    column,
    prop,
    row,
    sort_by,
    state_timeline,
    target,
    timeseries,
    value_map,
)
from .queries import IS_EMAIL, PER_TARGET, PROBE, PROBE_KEY, probed
from .tables import Column, labels_table, latest_table


def email_row(y: int) -> list[Panel]:
    yes_no = value_map(("1", "green", "yes"), ("0", "red", "no"))
    verdicts = value_map(
        ("pass", "green"),
        ("fail", "red"),
        ("permerror", "red"),
        ("softfail", "orange"),
        ("temperror", "orange"),
        ("neutral", "blue"),
        ("policy", "blue"),
    )
    yes_no_cells = (prop("mappings", [yes_no]), COLORED_CELLS)
    columns = [
        Column(
            "A",
            f"{PER_TARGET} (probe_email_send_success{{{PROBE}}})",
            "Sent",
            "none",
            0,
            yes_no_cells,
        ),
        Column(
            "B",
            f"{PER_TARGET} (probe_success{{{PROBE}}} {IS_EMAIL})",
            "Delivered",
            "none",
            0,
            yes_no_cells,
        ),
        Column("C", f"{PER_TARGET} (probe_email_delivery_seconds{{{PROBE}}})", "Delivery", "s"),
        Column(
            "D",
            f'sum by ({PROBE_KEY}) (probe_email_duration_seconds{{{PROBE}, phase=~"smtp_.*"}})',
            "SMTP",
            "s",
        ),
        Column(
            "E",
            f'sum by ({PROBE_KEY}) (probe_email_duration_seconds{{{PROBE}, phase=~"receive_.*"}})',
            "Mailbox session",
            "s",
        ),
    ]
    return [
        row(600, "Email", y),
        against_timeout(
            601,
            "Email delivery time",
            "probe_email_delivery_seconds",
            (0, y + 1, 12, 8),
            description="Time from the SMTP server accepting the probe mail to the first mailbox "
            "poll that listed it (resolution: the poll interval plus one mailbox session). The "
            "dashed line is the probe's timeout: a mail slower than that fails the probe with "
            "not_delivered. SondeEmailDeliverySlow fires above half of it. No point where a "
            "probe failed.",
            only=IS_EMAIL,
        ),
        state_timeline(
            602,
            "Email sent and delivered",
            [
                target(probed(f"probe_email_send_success{{{PROBE}}}"), legend="{{target}} sent"),
                target(
                    probed(f"probe_success{{{PROBE}}} {IS_EMAIL}"),
                    ref="B",
                    legend="{{target}} delivered",
                ),
            ],
            (12, y + 1, 12, 8),
            description="Per probe: did the SMTP server accept the mail (sent), and did the whole "
            "round trip succeed (delivered)? Sent but not delivered: the mail system lost or "
            "delayed it, or the mailbox could not be read (failure reason not_delivered or "
            "receive_*). Not sent: smtp_* failure reasons (SondeEmailSendFailing).",
            mappings=yes_no,
        ),
        timeseries(
            603,
            "SMTP time by phase",
            [
                target(
                    probed(f'probe_email_duration_seconds{{{PROBE}, phase=~"smtp_.*"}}'),
                    legend="{{target}} {{phase}}",
                )
            ],
            (0, y + 9, 12, 8),
            description="Sending, stacked: smtp_connect (TCP connect, greeting and EHLO), "
            "smtp_tls (STARTTLS, or the handshake for smtps://), smtp_auth, smtp_send (MAIL, "
            "RCPT, DATA up to the 250). A phase that fails ends the probe with its reason "
            "(smtp_connect, smtp_tls, smtp_auth, smtp_rejected).",
            unit="s",
            style="stacked",
        ),
        timeseries(
            604,
            "Mailbox time by phase",
            [
                target(
                    probed(f'probe_email_duration_seconds{{{PROBE}, phase=~"receive_.*"}}'),
                    legend="{{target}} {{phase}}",
                )
            ],
            (12, y + 9, 12, 8),
            description="The POP3/IMAP session that found the mail, stacked: receive_connect, "
            "receive_tls, receive_auth, receive_retrieve (list and header reads) and "
            "receive_delete (delete and commit). Only probes that found their mail have them.",
            unit="s",
            style="stacked",
        ),
        labels_table(
            605,
            "Authentication-Results verdicts",
            probed(f"probe_email_auth_result{{{PROBE}}} == 1"),
            (0, y + 17, 10, 8),
            description="DKIM, SPF and DMARC verdicts the receiving server wrote into the "
            "probe mail's topmost Authentication-Results header. Empty for targets whose "
            "server adds no such header.",
            hide=("job",),
            overrides=[
                column(
                    "result",
                    prop("mappings", [verdicts]),
                    # Unmapped results (none, other) without colour, not the default green.
                    prop("color", {"mode": "fixed", "fixedColor": "transparent"}),
                    COLORED_CELLS,
                )
            ],
        ),
        latest_table(
            606,
            "Email per target (latest probe)",
            columns,
            (10, y + 17, 14, 8),
            description="The latest email probe of each target: sent, delivered, delivery "
            "time, and the time spent sending (SMTP) and in the mailbox session that found the "
            "mail. Empty cells: the probe failed before that step (the status table says why).",
            options=sort_by("Delivered"),
        ),
    ]
