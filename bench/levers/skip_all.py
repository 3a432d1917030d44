"""Lever: uvloop + no probe log + no self-metric updates + no history (sum of the skips)."""

from patches import drop_probe_log, no_history, null_self_metrics, run, use_uvloop

run(use_uvloop, drop_probe_log, null_self_metrics, no_history)
