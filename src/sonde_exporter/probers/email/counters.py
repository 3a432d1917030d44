"""The email prober's exporter-wide counters, shown on /metrics.

A module of their own so that selfmetrics can register them without importing the mail
stack (aiosmtplib and the clients), which an exporter with no email module never loads.
"""

from __future__ import annotations

from prometheus_client import Counter

LATE_MAILS = Counter(
    "sonde_email_late_mails",
    "Probe mails found in a mailbox after their probe had ended without finding them",
    registry=None,
)
STALE_MAILS = Counter(
    "sonde_email_stale_mails_deleted",
    "Probe mails older than stale_after deleted from a mailbox",
    registry=None,
)
COUNTERS = (LATE_MAILS, STALE_MAILS)
"""Registered by selfmetrics on every exporter's registry."""
