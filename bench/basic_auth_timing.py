#!/usr/bin/env python3
"""Does a refused login tell whether the user name exists? Time it over HTTP.

Starts sonde-exporter with a web config holding two bcrypt users (both at --cost), then sends
refused logins over one keep-alive connection, interleaving an unknown user name with a known
user's wrong password (and, for scale, a known user's right password, cached after the first),
and prints the median, the interquartile range and the 5-95 % range of each kind, plus the
difference of the medians against the spread. Nothing here is part of `make test`.

    .venv/bin/python bench/basic_auth_timing.py              # 60 rounds at cost 10
    .venv/bin/python bench/basic_auth_timing.py --cost 12 --rounds 30
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bcrypt

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "modules:\n  tcp:\n    prober: tcp\n"


def header(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def wait_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if 'msg="Listening on address"' in line:
                return int(line.rsplit(":", 1)[1])
        if proc.poll() is not None:
            sys.exit(f"sonde-exporter exited:\n{log.read_text()}")
        time.sleep(0.05)
    sys.exit("sonde-exporter did not listen within 20 s")


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=20)
    quartiles = statistics.quantiles(ms, n=4)
    return (
        f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | "
        f"{quartiles[0]:.1f}-{quartiles[2]:.1f} | {q[0]:.1f}-{q[-1]:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    users = {"alice": "alice-password", "bob": "bob-password"}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "config.yml").write_text(CONFIG)
        lines = [
            f"  {u}: {bcrypt.hashpw(p.encode(), bcrypt.gensalt(args.cost)).decode()}"
            for u, p in users.items()
        ]
        (directory / "web.yml").write_text("basic_auth_users:\n" + "\n".join(lines) + "\n")
        log = directory / "exporter.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        argv = [
            sys.executable,
            "-m",
            "sonde_exporter",
            "--config.file",
            "config.yml",
            "--web.config.file",
            "web.yml",
            "--web.listen-address",
            "127.0.0.1:0",
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=directory, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", wait_port(proc, log), timeout=60)
            kinds = {
                "unknown user": lambda i: header(f"nobody{i}", "alice-password"),
                "known user, wrong password": lambda i: header("alice", f"guess{i}"),
                "known user, right password (cached)": lambda i: header("bob", "bob-password"),
            }
            times: dict[str, list[float]] = {k: [] for k in kinds}
            order = list(kinds)
            for i in range(args.rounds + 2):  # the first two rounds warm up and are dropped
                random.shuffle(order)
                for kind in order:
                    start = time.perf_counter()
                    conn.request("GET", "/metrics", headers=kinds[kind](i))
                    response = conn.getresponse()
                    response.read()
                    elapsed = time.perf_counter() - start
                    if i >= 2:
                        times[kind].append(elapsed)
            print(
                f"bcrypt cost {args.cost}, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}\n"
            )
            print("| request | n | median ms | IQR ms | 5-95 % ms |\n|---|---|---|---|---|")
            for kind, samples in times.items():
                print(summary(kind, samples))
            a, b = (statistics.median(times[k]) * 1000 for k in order if "cached" not in k)
            iqr = statistics.quantiles([t * 1000 for t in times["unknown user"]], n=4)
            print(
                f"\nmedian difference {abs(a - b):.2f} ms; unknown user's IQR {iqr[2] - iqr[0]:.2f} ms"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)


if __name__ == "__main__":
    main()
