"""CPU per TCP probe of two source trees, A/B interleaved in fresh processes: did a change
raise the cost of a probe that does not use it?

Each round runs every tree once (order alternating ABBA) in its own process: it loads a
config with a plain `tcp` module, then times `--probes` calls of the handler's `run_probe`
(the /probe path without HTTP) against a loopback accept-and-close listener, in CPU time
(process_time: not inflated when other work preempts it). It prints the per-round figures and
the median ratio B/A. Only 127.0.0.1 is probed.

    .venv/bin/python bench/probe_cpu.py e496b4d src --rounds 8   # a revision, or a src/ path
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from revisions import checkout, tcp_target

# Runs inside each child, against whichever tree PYTHONPATH names; it imports the modules
# under their old names too (state.py, probe.py, metrics.py), so older trees can be measured.
CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path

from revisions import checkout, tcp_target
from sonde_exporter.handler import run_probe
try:
    from sonde_exporter.handler import Probed
except ImportError:  # before the probe outcome: run_probe took the parts
    Probed = None
from sonde_exporter.targets import parse_host_port
try:
    from sonde_exporter.exporter import Exporter
    from sonde_exporter.probe_metrics import ProbeMetrics
    from sonde_exporter.prober_base import ProbeContext, ProbeLog
except ImportError:
    from sonde_exporter.state import Exporter
    from sonde_exporter.metrics import ProbeMetrics
    from sonde_exporter.probe import ProbeContext, ProbeLog

config, port, probes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
exporter = Exporter.from_file(config)
module = exporter.config.modules["tcp"]
target = f"127.0.0.1:{port}"
parsed = parse_host_port(target)
probed = None if Probed is None else Probed("tcp", module, target, parsed, 5.0, False)

async def main():
    import gc
    gc.collect()
    gc.freeze()  # as the exporter does once it serves (collector.settle)
    loop = asyncio.get_running_loop()
    async def one():
        ctx = ProbeContext(metrics=ProbeMetrics(), log=ProbeLog(), deadline=loop.time() + 5)
        if Probed is None:
            result = await run_probe(exporter, "tcp", module, target, parsed, 5.0, ctx)
            metrics = ctx.metrics
        else:
            result, metrics = await run_probe(exporter, probed, 5.0, ctx)
        assert result.success, result.reason
        metrics.render()
    for _ in range(200):
        await one()
    start = time.process_time()
    for _ in range(probes):
        await one()
    return (time.process_time() - start) / probes

print(json.dumps(asyncio.run(main())))
"""


def _tree(spec: str, scratch: Path) -> Path:
    """A src/ directory as given, or the src/ of a git revision."""
    if Path(spec).is_dir():
        return Path(spec).resolve()
    scratch.mkdir()
    return checkout(spec, scratch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="A: a src/ directory or a git revision")
    parser.add_argument("b", help="B: the same")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--probes", type=int, default=3000)
    args = parser.parse_args()

    config = Path(__file__).with_name("probe_cpu.yml")
    config.write_text("modules:\n  tcp:\n    prober: tcp\n    timeout: 5s\n")
    figures: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp, tcp_target() as port:
        trees = {
            name: _tree(spec, Path(tmp, name)) for name, spec in (("A", args.a), ("B", args.b))
        }
        for round_ in range(args.rounds):
            order = ("A", "B") if round_ % 2 == 0 else ("B", "A")
            for name in order:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        str(config),
                        str(port),
                        str(args.probes),
                    ],
                    env={"PYTHONPATH": str(trees[name]), "PATH": "/usr/bin:/bin"},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures[name].append(json.loads(out.stdout) * 1e6)
            print(f"round {round_ + 1}: A {figures['A'][-1]:.1f} µs, B {figures['B'][-1]:.1f} µs")
    config.unlink()
    ratios = [b / a for a, b in zip(figures["A"], figures["B"], strict=True)]
    print(
        f"median CPU per probe: A {statistics.median(figures['A']):.1f} µs, "
        f"B {statistics.median(figures['B']):.1f} µs; B/A per round: median "
        f"{statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
