"""Lever: no per-probe prometheus_client self-metric updates (their cost bound)."""

from patches import null_self_metrics, run

run(null_self_metrics)
