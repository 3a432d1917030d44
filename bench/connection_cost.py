"""Instructions per /probe request of the whole exporter process, on a new connection per
request and on one kept-alive connection: what accepting and closing a connection costs.

For each tree (a git revision or a src/ path) it starts the exporter under
`valgrind --tool=callgrind --instr-atstart=no`, warms it up with requests of both kinds, then
switches instrumentation on and, per kind, zeroes the counters (`callgrind_control -z`), sends
`--requests` /probe requests of a plain `tcp` module to a loopback accept-and-close listener
and dumps the counters (`callgrind_control -d`). The figure is the dump's total divided by the
requests: start-up, imports and warm-up are not in it, and load does not change it. Only
127.0.0.1 is sent to.

    .venv/bin/python bench/connection_cost.py 6901173 src --requests 300
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revisions import checkout, tcp_target

CONFIG = "modules:\n  tcp:\n    prober: tcp\n    timeout: 5s\n"
WARM_UP = 50
LISTENING = re.compile(r"Listening on address.*address=127\.0\.0\.1:(\d+)")


class Exporter:
    """The exporter under callgrind, its instrumentation off until `measure`."""

    def __init__(self, src: Path, directory: Path, target: int) -> None:
        config = directory / "config.yml"
        config.write_text(CONFIG)
        self._dir = directory
        self._log = directory / "exporter.log"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={directory}/callgrind.out",
            f"--log-file={directory}/valgrind.log",
            sys.executable,
            "-m",
            "sonde_exporter",
            "--config.file",
            str(config),
            "--web.listen-address",
            "127.0.0.1:0",
            "--storage.path",
            ":memory:",
            "--monitors.scheduler",
            "off",
        ]
        env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
        with self._log.open("w") as log:
            self._process = subprocess.Popen(command, stderr=log, env=env)
        self.port = self._wait_port()
        self.path = f"/probe?module=tcp&target=127.0.0.1:{target}"

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if match := LISTENING.search(self._log.read_text()):
                return int(match.group(1))
            if self._process.poll() is not None:
                raise SystemExit(f"the exporter exited:\n{self._log.read_text()}")
            time.sleep(0.5)
        raise SystemExit("the exporter did not listen within 300 s")

    def instrument(self) -> None:
        self._control("-i", "on")

    def _control(self, *flags: str) -> None:
        subprocess.run(
            ["callgrind_control", *flags, str(self._process.pid)],
            check=True,
            capture_output=True,
        )

    def send(self, requests: int, new_connections: bool) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        for _ in range(requests):
            if new_connections:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            connection.request("GET", self.path)
            body = connection.getresponse().read()
            assert b"\nprobe_success 1\n" in body, body[:2000]
            if new_connections:
                connection.close()
        connection.close()
        time.sleep(1)  # the server sees the last close (slow under valgrind) inside the batch

    def measure(self, requests: int, new_connections: bool) -> float:
        """Instructions per request over `requests` requests."""
        before = set(self._dir.glob("callgrind.out.*"))
        self._control("-z")
        self.send(requests, new_connections)
        self._control("-d")
        (dump,) = set(self._dir.glob("callgrind.out.*")) - before
        totals = re.search(r"^(?:totals|summary): (\d+)", dump.read_text(), re.MULTILINE)
        assert totals, dump
        return int(totals.group(1)) / requests

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+", help="git revisions or src/ paths")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tcp_target() as target, tempfile.TemporaryDirectory() as tmp:
        for index, tree in enumerate(args.trees):
            directory = Path(tmp) / str(index)
            directory.mkdir()
            src = Path(tree) if Path(tree).is_dir() else checkout(tree, directory)
            exporter = Exporter(src.resolve(), directory, target)
            try:
                exporter.send(WARM_UP, new_connections=True)
                exporter.send(WARM_UP, new_connections=False)
                exporter.instrument()
                results[tree] = {
                    kind: exporter.measure(args.requests, new_connections=kind == "new")
                    for kind in ("new", "keep-alive")
                }
            finally:
                exporter.stop()
            print(tree, {kind: round(value) for kind, value in results[tree].items()}, flush=True)
    first = results[args.trees[0]]
    print(f"\n| tree | new connection per request | keep-alive | ({args.requests} requests)")
    print("|---|---|---|")
    for tree, figures in results.items():
        cells = [
            f"{value:,.0f} ({(value / first[kind] - 1) * 100:+.2f} %)"
            for kind, value in figures.items()
        ]
        print(f"| {tree} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
