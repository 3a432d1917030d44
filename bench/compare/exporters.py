"""The two exporters and sonde's variants: their configs, their command lines, their process.

Each runs with a config written here, on a free loopback port, in its own session; launch()
times it from exec to `/-/ready` answering 200."""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import REPO
from .children import BenchError, Children

BLACKBOX_BIN = "/usr/bin/prometheus-blackbox-exporter"


@dataclass(frozen=True)
class ModuleSpec:
    """One workload's module in an exporter's config, and what to read from its answers.

    `rtt_metric` is the figure compared with the direct measurement (issue 6, target 5).
    """

    name: str
    metrics: tuple[str, ...]
    rtt_metric: str


ICMP_RTT = 'probe_icmp_duration_seconds{phase="rtt"}'
# TCP: sonde's kernel RTT from TCP_INFO; blackbox's whole probe duration (it has no
# connect-phase metric). ICMP: both report the echo RTT as the rtt phase (with count=1,
# sonde's mean of the replies is the one reply's RTT, as probe_icmp_rtt_seconds{stat="avg"}).
SONDE_MODULES = {
    "tcp": ModuleSpec(
        "tcp",
        (
            "probe_tcp_rtt_seconds",
            "probe_duration_seconds",
            'probe_tcp_duration_seconds{phase="connect"}',
        ),
        "probe_tcp_rtt_seconds",
    ),
    "icmp": ModuleSpec(
        "icmp",
        ("probe_duration_seconds", ICMP_RTT, 'probe_icmp_rtt_seconds{stat="avg"}'),
        ICMP_RTT,
    ),
}
BLACKBOX_MODULES = {
    "tcp": ModuleSpec(
        "tcp_connect",
        ("probe_duration_seconds", "probe_dns_lookup_time_seconds"),
        "probe_duration_seconds",
    ),
    "icmp": ModuleSpec("icmp", ("probe_duration_seconds", ICMP_RTT), ICMP_RTT),
}
# ICMP like for like: one echo request per probe, IPv4, and blackbox's payload size (its
# default payload is the 28 bytes "Prometheus Blackbox Exporter").
SONDE_CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 5s
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      count: 1
      payload_size: 28
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""
BLACKBOX_CONFIG = """\
modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def http_get(port: int, path: str, timeout: float = 10.0) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode(errors="replace")
    finally:
        conn.close()


@dataclass
class Exporter:
    """How to run one exporter, and the running instance."""

    name: str
    command: Callable[[Path, int], list[str]]
    config: str
    modules: dict[str, ModuleSpec]
    workdir: Path
    env: dict[str, str] | None = None
    port: int = 0
    proc: subprocess.Popen[Any] | None = None
    log_file: TextIO | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def probe_url(self, target: str, kind: str = "tcp") -> str:
        module = self.modules[kind].name
        return f"http://127.0.0.1:{self.port}/probe?module={module}&target={target}"

    def launch(self, children: Children, timeout: float = 20.0) -> float:
        """Start on a free port; return seconds from exec to /-/ready answering 200."""
        config_path = self.workdir / f"{self.name}.yml"
        config_path.write_text(self.config)
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            argv = self.command(config_path, self.port)
            self.log_file = self.log_path.open("a")
            started = time.perf_counter()
            self.proc = children.start(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
            while time.perf_counter() - started < timeout:
                if self.proc.poll() is not None:
                    break
                if http_status(self.port, "/-/ready", timeout=0.5) == 200:
                    return time.perf_counter() - started
                time.sleep(0.002)
            children.stop(self.proc)
            self.log_file.close()
        tail = self.log_path.read_text()[-2000:]
        raise BenchError(f"{self.name} did not become ready; command {argv}; log tail:\n{tail}")

    def stop(self, children: Children) -> None:
        if self.proc is not None:
            children.stop(self.proc)
            self.proc = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


@dataclass(frozen=True)
class Variant:
    """A sonde variant for lever A/B runs: another launcher script, another git revision of
    src/, and/or extra flags."""

    name: str
    launcher: str | None = None
    rev: str | None = None
    flags: tuple[str, ...] = ()
    text: str = ""


def checkout_src(rev: str, workdir: Path, name: str) -> Path:
    """src/ as of a git revision, unpacked under workdir; return the path for PYTHONPATH."""
    dest = workdir / f"src-{name}"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def parse_variant(text: str) -> Variant:
    """NAME=SPEC; SPEC is a launcher script, git:REV (src/ at that revision), or flags, e.g.
    `before=git:HEAD~1`, `asyncio=--event-loop asyncio`, `old_asyncio=git:main --event-loop asyncio`."""
    name, sep, spec = text.partition("=")
    words = shlex.split(spec)
    if not sep or not name or not words or name in ("sonde", "blackbox"):
        raise argparse.ArgumentTypeError(
            f"expected NAME=SCRIPT, NAME=git:REV or NAME=FLAGS (NAME not sonde/blackbox): {text!r}"
        )
    launcher = rev = None
    if not words[0].startswith("-"):
        source = words.pop(0)
        if source.startswith("git:"):
            rev = source[4:]
            if subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--verify", "-q", rev + "^{commit}"],
                capture_output=True,
                check=False,
            ).returncode:
                raise argparse.ArgumentTypeError(f"no such git revision: {rev}")
        elif Path(source).is_file():
            launcher = source
        else:
            raise argparse.ArgumentTypeError(f"no such launcher script: {source}")
    return Variant(name, launcher, rev, tuple(words), text)


def make_exporters(args: argparse.Namespace, workdir: Path) -> list[Exporter]:
    sonde_python = str(args.sonde_python)

    def sonde_cmd(
        launcher: str | None, flags: tuple[str, ...] = ()
    ) -> Callable[[Path, int], list[str]]:
        start = ["-m", "sonde_exporter"] if launcher is None else [launcher]

        def command(config: Path, port: int) -> list[str]:
            return [
                sonde_python,
                *start,
                "--config.file",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--log.level",
                "warn",
                *args.sonde_arg,
                *flags,
            ]

        return command

    def blackbox_cmd(config: Path, port: int) -> list[str]:
        return [
            args.blackbox_bin,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]

    def sonde(v: Variant) -> Exporter:
        env = None
        if v.rev is not None:
            # PYTHONPATH comes before the venv's editable-install path entry.
            env = {**os.environ, "PYTHONPATH": str(checkout_src(v.rev, workdir, v.name))}
        return Exporter(
            name=v.name,
            command=sonde_cmd(v.launcher, v.flags),
            config=SONDE_CONFIG,
            modules=SONDE_MODULES,
            workdir=workdir,
            env=env,
        )

    available = {
        "sonde": sonde(Variant("sonde", args.sonde_launcher)),
        "blackbox": Exporter(
            name="blackbox",
            command=blackbox_cmd,
            config=BLACKBOX_CONFIG,
            modules=BLACKBOX_MODULES,
            workdir=workdir,
        ),
    }
    chosen = [available[name] for name in args.exporters]
    return chosen + [sonde(v) for v in args.variant]


def interleaved(exporters: list[Exporter], index: int) -> list[Exporter]:
    """Rotate who goes first, so slow drift on the shared machine hits all alike."""
    shift = index % len(exporters)
    return exporters[shift:] + exporters[:shift]
