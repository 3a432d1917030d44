"""The gauges of an email probe (the phase durations are set by both sides)."""

from __future__ import annotations

from ...probe_metrics import ProbeGauge

EMAIL_PHASE = ProbeGauge(
    "probe_email_duration_seconds",
    "Duration of each phase of the email round trip in seconds (smtp_connect, smtp_tls, "
    "smtp_auth, smtp_send; receive_connect, receive_tls, receive_auth, receive_retrieve, "
    "receive_delete)",
    ("phase",),
)
EMAIL_DELIVERY = ProbeGauge(
    "probe_email_delivery_seconds",
    "Time from the SMTP server accepting the probe mail to the first mailbox poll that listed "
    "it, in seconds",
)
EMAIL_SENT = ProbeGauge(
    "probe_email_send_success",
    "Whether the SMTP server accepted the probe mail (1) or not (0)",
)
EMAIL_AUTH = ProbeGauge(
    "probe_email_auth_result",
    "Verdicts in the received mail's Authentication-Results header: 1 for the result of each "
    "method found (dkim, spf, dmarc)",
    ("method", "result"),
)
