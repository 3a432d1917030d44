"""End to end: Prometheus schedules the monitors through /v1/sd, sharded with hashmod.

Two exporters with the same config monitors and --monitors.scheduler=off, two real Prometheus
servers (Debian's), each with the http_sd job of docs/scale-out.md pointed at its own exporter
and keeping its share of `hashmod(monitor_id) % 2`. Every checked monitor must be probed by
exactly one of them, at the monitor's own interval and timeout (__scrape_interval__,
__scrape_timeout__), through /probe; disabled monitors by neither; the exporters run no check
of their own.

/v1/sd needs an API key with the `sd:read` scope: each exporter's database gets one from the
real `sonde-exporter api-key` command, and its Prometheus sends it as the documented job does
(`authorization.credentials_file`, sent as `Authorization: Bearer ...`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import statistics
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_harness import create_key
from grafana_files import ROOT, run_promtool, tool
from helpers import parse_metrics
from monitor_tools import MODULES, stored_results, tcp_id
from processes import LoopbackServer, Process, wait_for

import sonde_exporter
from sonde_exporter.durations import parse_duration

pytestmark = pytest.mark.prometheus

DOC = ROOT / "docs" / "scale-out.md"
ENV = {**os.environ, "PYTHONPATH": str(Path(sonde_exporter.__file__).resolve().parent.parent)}
WAIT = 60.0
# name -> (interval, status). The module's timeout is 1s: the scrape timeout is that plus the
# exporter's 0.5s --timeout-offset, at most the interval.
MONITORS = {
    "alpha": ("1s", "active"),
    "bravo": ("1s", "active"),
    "charlie": ("2s", "active"),
    "delta": ("2s", "maintenance"),
    "echo": ("3s", "active"),
    "foxtrot": ("1s", "disabled"),
}
CHECKED = {name for name, (_, status) in MONITORS.items() if status != "disabled"}
SCRAPE_TIMEOUT = {"1s": 1.0, "2s": 1.5, "3s": 1.5}


def documented_job() -> dict[str, Any]:
    """The Prometheus config of docs/scale-out.md, verbatim."""
    after = DOC.read_text().split("<!-- scale-out-job -->", 1)[1]
    block = re.match(r"\s*```yaml\n(.*?)```", after, re.S)
    assert block, "docs/scale-out.md: the marker must be followed by a ```yaml block"
    config: dict[str, Any] = yaml.safe_load(block.group(1))
    return config


@dataclass
class Shard:
    number: int
    exporter: Process
    address: str  # of the exporter
    prometheus: str  # base URL
    db: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.prometheus}/api/v1/targets", timeout=10) as response:
            active: list[dict[str, Any]] = json.load(response)["data"]["activeTargets"]
        return active


def prometheus_config(path: Path, exporter: str, shard: int, key_file: Path) -> Path:
    config = documented_job()
    (job,) = config["scrape_configs"]
    (sd,) = job["http_sd_configs"]
    assert sd["url"] == "http://localhost:10115/v1/sd"
    sd["url"] = f"http://{exporter}/v1/sd"
    sd["authorization"]["credentials_file"] = str(key_file)
    keep = job["relabel_configs"][-1]
    assert (keep["action"], keep["regex"]) == ("keep", "0")
    keep["regex"] = str(shard)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_promtool("check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Shard]]:
    tmp = tmp_path_factory.mktemp("sd-e2e")
    target = LoopbackServer()
    entries = [
        {"name": name, "module": "tcp", "target": f"127.0.0.1:{target.port}", "interval": i}
        | {"status": status}
        for name, (i, status) in MONITORS.items()
    ]
    config = tmp / "sonde.yml"
    config.write_text(MODULES + yaml.safe_dump({"monitors": entries}))
    processes: list[Process] = []
    out: list[Shard] = []
    try:
        for number in (0, 1):
            db = tmp / f"sonde-{number}.db"
            key_file = tmp / f"sonde-sd-{number}.key"
            key_file.write_text(create_key(db, "prometheus", ["sd:read"]) + "\n")
            exporter = Process(
                f"exporter-{number}",
                [
                    sys.executable, "-m", "sonde_exporter",
                    "--config.file", str(config),
                    "--web.listen-address", "127.0.0.1:0",
                    "--storage.path", str(db),
                    "--monitors.scheduler=off",
                ],
                tmp,
                env=ENV,
            )  # fmt: skip
            processes.append(exporter)
            address = f"127.0.0.1:{exporter.wait_listening()}"
            prometheus = Process(
                f"prometheus-{number}",
                [
                    tool("prometheus"),
                    f"--config.file={prometheus_config(tmp / f'p{number}.yml', address, number, key_file)}",
                    f"--storage.tsdb.path={tmp / f'data-{number}'}",
                    "--web.listen-address=127.0.0.1:0",
                    "--log.level=warn",
                ],
                tmp,
            )  # fmt: skip
            processes.append(prometheus)
            base = f"http://127.0.0.1:{prometheus.wait_listening()}"
            out.append(Shard(number, exporter, address, base, db))
        yield out
    finally:
        for process in reversed(processes):
            process.stop()
        target.close()


def monitors_of(shard: Shard) -> dict[str, dict[str, Any]]:
    """monitor name -> its active target in this Prometheus."""
    return {t["labels"]["monitor"]: t for t in shard.targets()}


def test_hashmod_splits_the_monitors_between_the_servers(shards: list[Shard]):
    """Each checked monitor is a target of exactly one server; disabled ones of neither."""

    def split() -> list[set[str]] | None:
        try:
            seen = [set(monitors_of(shard)) for shard in shards]
        except OSError:  # still starting
            return None
        return seen if set().union(*seen) == CHECKED else None

    seen = wait_for("every checked monitor to be discovered", split, WAIT, 0.25)
    assert seen[0] & seen[1] == set()
    # Where Prometheus' hashmod puts each: the last 8 bytes of the MD5 of the monitor ID.
    assert seen == [{name for name in CHECKED if hashmod(tcp_id(name)) == n} for n in (0, 1)]
    assert seen[0] and seen[1], "the names are chosen so that both shards get monitors"


def hashmod(value: str, modulus: int = 2) -> int:
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


def test_each_monitor_is_probed_at_its_interval_and_timeout(shards: list[Shard]):
    """The targets carry the monitor's scrape interval and timeout (not the global 1m/10s), and
    the samples Prometheus stored are spaced by that interval."""
    for shard in shards:
        for name, target in wait_for(
            f"shard {shard.number}'s targets", lambda s=shard: monitors_of(s), WAIT
        ).items():
            interval = MONITORS[name][0]
            assert parse_duration(target["scrapeInterval"]) == parse_duration(interval), target
            assert parse_duration(target["scrapeTimeout"]) == SCRAPE_TIMEOUT[interval], target
            labels = target["labels"]
            assert labels["monitor_id"] == tcp_id(name)
            assert (labels["module"], labels["job"], labels["instance"]) == (
                "tcp",
                "sonde-sd",
                shard.address,
            )
            assert target["scrapeUrl"].startswith(f"http://{shard.address}/probe?")

    def spacings() -> dict[str, float] | None:
        out: dict[str, float] = {}
        for shard in shards:
            for r in shard.query('probe_success{job="sonde-sd"}[12s]'):
                times = [float(t) for t, _ in r["values"]]
                if len(times) < 4:
                    return None
                out[r["metric"]["monitor"]] = statistics.median(
                    b - a for a, b in itertools.pairwise(times)
                )
        return out if set(out) == CHECKED else None

    measured = wait_for("4 samples of every monitor", spacings, WAIT, 0.5)
    # Prometheus scrapes on a fixed grid: the median spacing is the interval, to the ms.
    assert {name: round(s, 1) for name, s in measured.items()} == {
        name: parse_duration(MONITORS[name][0]) for name in CHECKED
    }


def test_results_come_from_probe_and_the_exporters_run_no_checks(shards: list[Shard]):
    def succeeded() -> set[str]:
        return {
            r["metric"]["monitor"]
            for shard in shards
            for r in shard.query('probe_success{job="sonde-sd"} == 1')
        }

    wait_for("a successful probe of every checked monitor", lambda: succeeded() == CHECKED, WAIT)
    for shard in shards:
        with urllib.request.urlopen(f"http://{shard.address}/metrics", timeout=10) as response:
            metrics = parse_metrics(response.read().decode())
        probes = sum(v for k, v in metrics.items() if k.startswith("sonde_probes_total{"))
        assert probes > 0, f"exporter {shard.number} got no /probe"
        assert metrics["sonde_monitor_checks_in_flight"] == 0
        with urllib.request.urlopen(f"http://{shard.address}/monitors/metrics") as response:
            text = response.read().decode()
        assert "probe_success" not in text  # the scheduler is off: no result of its own
        assert "sonde_monitor_state" in text
        assert stored_results(shard.db) == []
