"""Lever: no per-probe debug log lines (cost bound of the eager ProbeLog)."""

from patches import drop_probe_log, run

run(drop_probe_log)
