"""Lever: no probe log + no self-metric updates + no history (the sum of the skips)."""

from patches import drop_probe_log, no_history, null_self_metrics, run

run(drop_probe_log, null_self_metrics, no_history)
