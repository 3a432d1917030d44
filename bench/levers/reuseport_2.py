"""Lever: two worker processes on one port (SO_REUSEPORT). Measure with the wrk workload."""

from patches import reuse_port_workers, run

run(reuse_port_workers(2))
