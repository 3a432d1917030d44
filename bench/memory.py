"""Memory at rest and start-up time of sonde-exporter, per config.

For each config it starts a fresh exporter, times exec -> first `GET /-/ready` = 200, reads
VmRSS once the process has settled, runs `--probes` TCP probes against a loopback listener
(and ICMP probes to 127.0.0.1 when the config has an `icmp` module and we are root), and reads
VmRSS again. It also reports the floor: a bare interpreter that imports only aiohttp.web,
prometheus_client, pydantic and yaml. Everything targets loopback only.

    .venv/bin/python bench/memory.py                      # TCP+ICMP config and config.yml
    .venv/bin/python bench/memory.py --probes 10000 --runs 3

This is a benchmark, not a test: nothing here runs in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from revisions import tcp_target

REPO = Path(__file__).resolve().parent.parent
TCP_ICMP_CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 5s
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      count: 1
"""
RSS_LINE = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])"
FLOORS = {
    # What the issue called the floor: `import pydantic` is lazy and loads almost nothing.
    "import aiohttp.web, prometheus_client, pydantic, yaml": (
        f"import aiohttp.web, prometheus_client, pydantic, yaml\n{RSS_LINE}"
    ),
    # The same with one pydantic model defined: what any config model costs before our code.
    "the same + one pydantic BaseModel": (
        "import aiohttp.web, prometheus_client, pydantic, yaml\n"
        f"class M(pydantic.BaseModel):\n    x: int = 0\n{RSS_LINE}"
    ),
}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /-/ready HTTP/1.0\r\n\r\n")
            return s.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")
    except OSError:
        return False


async def probe_many(port: int, module: str, target: str, count: int, concurrency: int) -> int:
    """Run `count` probes, `concurrency` at a time; return how many succeeded."""
    url = f"http://127.0.0.1:{port}/probe"
    params = {"module": module, "target": target}
    ok = 0
    remaining = count

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok, remaining
        while remaining > 0:
            remaining -= 1
            async with session.get(url, params=params) as response:
                ok += "\nprobe_success 1\n" in await response.text()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def measure(config: Path, probes: int, listener_port: int) -> dict[str, object]:
    port = free_port()
    command = [sys.executable, "-m", "sonde_exporter", "--config.file", str(config)]
    command += ["--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"]
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        while not ready(port):
            if process.poll() is not None or time.perf_counter() - started > 30:
                raise RuntimeError(f"exporter did not become ready with {config}")
            time.sleep(0.002)
        startup = time.perf_counter() - started
        time.sleep(1.0)  # let start-up garbage settle before reading "at rest"
        at_start = rss_kb(process.pid)
        result: dict[str, object] = {
            "config": config.name,
            "startup_s": round(startup, 3),
            "rss_start_mb": round(at_start / 1024, 1),
        }
        target = f"127.0.0.1:{listener_port}"
        ok = asyncio.run(probe_many(port, "tcp", target, probes, 16))
        result["tcp_probes_ok"] = ok
        if "icmp:" in config.read_text() and os.geteuid() == 0:
            result["icmp_probes_ok"] = asyncio.run(
                probe_many(port, "icmp", "127.0.0.1", probes // 10, 16)
            )
        time.sleep(1.0)
        result["rss_after_probes_mb"] = round(rss_kb(process.pid) / 1024, 1)
        return result
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=10_000, help="TCP probes per config")
    parser.add_argument("--runs", type=int, default=3, help="fresh exporters per config")
    parser.add_argument("--config", type=Path, action="append", help="configs (default: both)")
    args = parser.parse_args()

    for name, code in FLOORS.items():
        floors = [
            int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
            for _ in range(args.runs)
        ]
        print(f"floor, {name}: {statistics.median(floors) / 1024:.1f} MB")
    with tempfile.TemporaryDirectory() as tmp, tcp_target() as listener_port:
        configs = args.config
        if not configs:
            tcp_icmp = Path(tmp, "tcp_icmp.yml")
            tcp_icmp.write_text(TCP_ICMP_CONFIG)
            configs = [tcp_icmp, REPO / "config.yml"]
        for config in configs:
            runs = [measure(config, args.probes, listener_port) for _ in range(args.runs)]
            summary = {
                key: statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]
                for key in ("startup_s", "rss_start_mb", "rss_after_probes_mb")
            }
            print(json.dumps({"config": config.name, "median": summary, "runs": runs}))


if __name__ == "__main__":
    main()
