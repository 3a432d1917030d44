"""Side-by-side benchmark of sonde-exporter and Debian's prometheus-blackbox-exporter.

One command starts loopback TCP targets (accept and close, own process, one listener per
distinct 127.x.y.z address), both exporters (each with a config this package writes), runs
the load, stops everything it started (also on Ctrl-C) and prints Markdown tables of sonde
against blackbox with ratios. Every run is also written as JSON lines under bench/results/.

    python -m bench.compare all              # tcp, wrk, icmp, soak, startup
    python -m bench.compare tcp -c 1,16,64   # the Python load client only

Modules: `cli` (arguments, the run), `exporters` (how each exporter is configured and
started), `target` (the TCP target server), `load` (the HTTP load generator, its own process),
`direct` (the ground-truth sampler, its own process), `clients` (running load, direct and wrk
for one level), `workloads` and `icmp` (what each workload does), `netns` (the datagram ICMP
run in a network namespace), `report` (tables), `children`, `procfs`, `stats`, `loopback`
(helpers). See bench/README.md for what each figure means and the caveats.
"""

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
