"""sonde-exporter run the way docs/sidecar.md runs it, and the sidecar files themselves.

The runtime tests need root (CI runs as root): each creates a network namespace standing in
for the pod, with an application listening on its loopback, and starts the exporter inside it
as `nobody`, with no capabilities at all (so no CAP_NET_RAW) and no way to gain any. ICMP then
depends on the namespace's net.ipv4.ping_group_range alone, which only the test that grants it
changes, inside its own namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_files import ROOT, run_promtool
from helpers import parse_metrics
from processes import Process, finish_by_stdin

DOCS = ROOT / "docs" / "sidecar.md"
DOCKERFILE = ROOT / "docs" / "sidecar" / "Dockerfile"
NOBODY = 65534
CAP_NET_RAW = 13
PING_GROUP_RANGE = "net/ipv4/ping_group_range"

# The pod: a new network namespace whose loopback carries the application (any TCP listener
# that accepts). It lives until the test closes the holder's stdin.
POD = """
import socket, subprocess, sys, threading
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
app = socket.create_server(("127.0.0.1", 0))
print(app.getsockname()[1], flush=True)
def serve():
    while True:
        conn, _ = app.accept()
        conn.close()
threading.Thread(target=serve, daemon=True).start()
sys.stdin.read()
"""

# An HTTP GET from inside the pod's namespace, printed as JSON.
GET = """
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(json.dumps([r.status, r.read().decode()]))
except urllib.error.HTTPError as e:
    print(json.dumps([e.code, e.read().decode()]))
"""


@dataclass
class Pod:
    pid: int  # a process inside the namespace
    app_port: int

    def run(self, *argv: str) -> list[str]:
        """argv, to be run inside the pod's network namespace."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *argv]

    def get(self, url: str) -> tuple[int, str]:
        out = subprocess.run(
            self.run(sys.executable, "-c", GET, url),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        status, body = json.loads(out.stdout)
        return int(status), str(body)

    def read_sysctl(self, name: str) -> str:
        """A sysctl as this namespace sees it (net.* sysctls are per network namespace)."""
        out = subprocess.run(
            self.run("cat", f"/proc/sys/{name}"),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return " ".join(out.stdout.split())

    def write_sysctl(self, name: str, value: str) -> None:
        write = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
        subprocess.run(
            self.run(sys.executable, "-c", write, f"/proc/sys/{name}", value),
            timeout=30,
            check=True,
        )


@dataclass
class Sidecar:
    url: str  # http://127.0.0.1:port inside the pod
    process: Process

    def probe(self, pod: Pod, **params: str) -> tuple[int, str]:
        return pod.get(f"{self.url}/probe?{urllib.parse.urlencode(params)}")

    def metrics(self, pod: Pod) -> dict[str, float]:
        status, body = pod.get(f"{self.url}/metrics")
        assert status == 200
        return parse_metrics(body)


def yaml_blocks(markdown: Path) -> list[Any]:
    documents: list[Any] = []
    for block in re.findall(r"```yaml\n(.*?)```", markdown.read_text(), re.S):
        documents.extend(yaml.safe_load_all(block))
    return documents


def manifest(kind: str) -> dict[str, Any]:
    (found,) = [d for d in yaml_blocks(DOCS) if isinstance(d, dict) and d.get("kind") == kind]
    return found


def sidecar_container() -> dict[str, Any]:
    containers = manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    (sidecar,) = [c for c in containers if c["name"] == "sonde-exporter"]
    return sidecar


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A temp dir nobody can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="sonde-sidecar-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def pod() -> Iterator[Pod]:
    assert os.geteuid() == 0, "this test creates a network namespace: run it as root (CI does)"
    holder = subprocess.Popen(
        ["unshare", "--net", "--", sys.executable, "-c", POD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        line = holder.stdout.readline()
        assert line.strip().isdigit(), f"the pod namespace did not start: {line!r}"
        yield Pod(holder.pid, int(line))
    finally:
        finish_by_stdin(holder)


def python_for_nobody(workdir: Path) -> tuple[list[str], dict[str, str]]:
    """An interpreter and environment with which `nobody` can import sonde_exporter.

    The venv's interpreter may live where nobody cannot read (pyenv under /root): then the
    system interpreter of the same version runs it, with the venv's packages on PYTHONPATH.
    When the checkout itself is unreadable, the packages are copied to `workdir`.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    interpreters = [sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"}

    def works(python: str, paths: list[str]) -> bool:
        if not Path(python).exists():
            return False
        probe = subprocess.run(
            [
                *as_nobody(),
                python,
                "-S",
                "-c",
                "import sonde_exporter.cli, sys; print(sys.version)",
            ],
            env={**env, "PYTHONPATH": ":".join(paths)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return probe.returncode == 0 and probe.stdout.startswith(version + ".")

    tried = []
    for paths in ([str(ROOT / "src"), *site], None):
        if paths is None:  # the checkout is unreadable for nobody: copy what it imports
            lib = workdir / "lib"
            skip = shutil.ignore_patterns("__pycache__", "mypy*", "ruff*", "hypothesis*", "_pytest")
            for source in (ROOT / "src", *map(Path, site)):
                shutil.copytree(source, lib, ignore=skip, dirs_exist_ok=True)
            paths = [str(lib)]
        for python in interpreters:
            tried.append(python)
            if works(python, paths):
                return [python, "-S"], {**env, "PYTHONPATH": ":".join(paths)}
    raise AssertionError(
        f"no Python {version} that user nobody can run sonde_exporter with (tried {tried}); "
        f"install the Debian package python3 or put the interpreter where others can read"
    )


def as_nobody() -> list[str]:
    """setpriv: become nobody with every capability gone and no way to get one back."""
    return [
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


@contextmanager
def sidecar(pod: Pod, workdir: Path) -> Iterator[Sidecar]:
    """The exporter run as docs/sidecar.md runs it: the documented config, inside the pod, as
    nobody without any capability; it must exit cleanly when stopped."""
    config = workdir / "config.yml"
    config.write_text(manifest("ConfigMap")["data"]["config.yml"])  # the documented config
    config.chmod(0o644)
    python, env = python_for_nobody(workdir)
    exporter = Process(
        "sidecar",
        pod.run(
            *as_nobody(),
            *python,
            "-m",
            "sonde_exporter",
            f"--config.file={config}",
            "--web.listen-address=127.0.0.1:0",
        ),
        workdir,
        env=env,
    )
    try:
        port = exporter.wait_listening()
        status = proc_status(exporter.pid)
        assert status["Uid"].split() == [str(NOBODY)] * 4
        assert status["Gid"].split() == [str(NOBODY)] * 4
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
        assert not int(status["CapBnd"], 16) & (1 << CAP_NET_RAW)
        assert status["NoNewPrivs"] == "1"
        assert os.readlink(f"/proc/{exporter.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        yield Sidecar(f"http://127.0.0.1:{port}", exporter)
    finally:
        exit_status = exporter.stop()
    assert exit_status == 0, exporter.log()


def debug_failure(body: str) -> str:
    """The "Probe failed" line of a ?debug=true answer (logfmt: quotes inside are escaped)."""
    (line,) = [line for line in body.splitlines() if 'msg="Probe failed"' in line]
    return line


@pytest.mark.root
def test_exporter_as_a_sidecar_probes_the_pods_loopback(pod: Pod, world_readable_dir: Path):
    with sidecar(pod, world_readable_dir) as exporter:
        assert pod.get(f"{exporter.url}/-/healthy")[0] == 200
        assert pod.get(f"{exporter.url}/-/ready")[0] == 200

        status_code, body = exporter.probe(pod, module="tcp", target=f"localhost:{pod.app_port}")
        assert status_code == 200
        assert parse_metrics(body)["probe_success"] == 1

        # Nothing listens on port 1 in the pod: refused, and said so.
        status_code, body = exporter.probe(pod, module="tcp", target="localhost:1")
        metrics = parse_metrics(body)
        assert status_code == 200 and metrics["probe_success"] == 0
        assert metrics['probe_failure_reason{reason="connect_refused"}'] == 1


@pytest.mark.root
def test_icmp_without_ping_group_range_fails_with_icmp_permission(
    pod: Pod, world_readable_dir: Path
):
    # A new network namespace starts with the kernel's default: no group may use ICMP sockets.
    assert pod.read_sysctl(PING_GROUP_RANGE) == "1 0"
    with sidecar(pod, world_readable_dir) as exporter:
        status_code, body = exporter.probe(pod, module="icmp", target="127.0.0.1", debug="true")
        assert status_code == 200
        failed = debug_failure(body)
        assert "reason=icmp_permission" in failed
        # The debug output says what to grant, for this user and this namespace's value.
        assert f'ping_group_range=\\"{NOBODY} {NOBODY}\\"' in failed
        assert '(now \\"1 0\\"' in failed
        assert "CAP_NET_RAW" in failed

        status_code, body = exporter.probe(pod, module="icmp", target="localhost")
        metrics = parse_metrics(body)
        assert status_code == 200 and metrics["probe_success"] == 0
        assert metrics['probe_failure_reason{reason="icmp_permission"}'] == 1
        assert metrics["probe_icmp_packets_sent"] == 0
        assert "probe_icmp_packet_loss_ratio" not in metrics  # nothing sent: no "0 % loss"

        mode = exporter.metrics(pod)
        assert mode['sonde_icmp_socket_mode{ip_protocol="ip4",mode="none"}'] == 1
        assert mode['sonde_icmp_socket_mode{ip_protocol="ip6",mode="none"}'] == 1
        # The rest of the exporter carries on.
        assert pod.get(f"{exporter.url}/-/healthy")[0] == 200
        _, body = exporter.probe(pod, module="tcp", target=f"localhost:{pod.app_port}")
        assert parse_metrics(body)["probe_success"] == 1
    assert 'msg="ICMP probes cannot run"' in exporter.process.log()  # said once at start-up


@pytest.mark.root
def test_icmp_works_when_the_pods_ping_group_range_includes_its_group(
    pod: Pod, world_readable_dir: Path
):
    host = Path("/proc/sys/net/ipv4/ping_group_range").read_text()
    pod.write_sysctl(PING_GROUP_RANGE, f"{NOBODY} {NOBODY}")  # only nobody's group
    assert pod.read_sysctl(PING_GROUP_RANGE) == f"{NOBODY} {NOBODY}"
    assert Path("/proc/sys/net/ipv4/ping_group_range").read_text() == host  # host untouched

    with sidecar(pod, world_readable_dir) as exporter:  # still no capability at all
        mode = exporter.metrics(pod)
        assert mode['sonde_icmp_socket_mode{ip_protocol="ip4",mode="datagram"}'] == 1
        assert mode['sonde_icmp_socket_mode{ip_protocol="ip6",mode="datagram"}'] == 1
        for target in ("127.0.0.1", "::1"):
            status_code, body = exporter.probe(pod, module="icmp", target=target)
            metrics = parse_metrics(body)
            assert status_code == 200 and metrics["probe_success"] == 1, body
            assert metrics["probe_icmp_packets_sent"] == metrics["probe_icmp_packets_received"]
            assert metrics["probe_icmp_packets_received"] == 3
            assert metrics["probe_icmp_packet_loss_ratio"] == 0


# The documented files, checked without a container engine or a cluster.


def test_manifest_runs_the_sidecar_unprivileged_with_health_probes():
    pod_spec = manifest("Deployment")["spec"]["template"]["spec"]
    sidecar = sidecar_container()
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    security = sidecar["securityContext"]
    assert security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports == {"sonde": 10115}
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "sonde"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "sonde"}
    sysctls = {s["name"]: s["value"] for s in pod_spec["securityContext"]["sysctls"]}
    assert "net.ipv4.ping_group_range" in sysctls


def test_manifest_config_passes_config_check(tmp_path: Path):
    config = tmp_path / "config.yml"
    config.write_text(manifest("ConfigMap")["data"]["config.yml"])
    result = subprocess.run(
        [sys.executable, "-m", "sonde_exporter", "--config.check", f"--config.file={config}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "OK"), result.stderr
    mount = sidecar_container()["volumeMounts"][0]["mountPath"]
    assert f"--config.file={mount}/config.yml" in sidecar_container()["args"]


@pytest.mark.prometheus
def test_sidecar_scrape_config_is_valid(tmp_path: Path):
    """promtool checks it, with Kubernetes discovery swapped for static targets: Debian's
    Prometheus is built without Kubernetes discovery."""
    (config,) = [d for d in yaml_blocks(DOCS) if "scrape_configs" in d]
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = [{"targets": ["shop-7d9f-abcde:10115"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run_promtool("check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "sonde-exporter" in jobs  # the name the alert rules expect


def test_dockerfile_is_minimal_non_root_and_health_checked():
    text = DOCKERFILE.read_text()
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line and line[0] != "#"]
    instructions = [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]
    (base,) = [arg for op, arg in instructions if op == "FROM"]
    assert re.fullmatch(r"python:3\.\d+-slim", base)
    assert any(op == "RUN" and "pip install --no-cache-dir ." in arg for op, arg in instructions)
    (user,) = [arg for op, arg in instructions if op == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    (health,) = [arg for op, arg in instructions if op == "HEALTHCHECK"]
    assert "/-/healthy" in health
    assert ("EXPOSE", "10115") in instructions
    for op, arg in instructions:  # everything it copies exists in the build context (the repo)
        if op == "COPY":
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source
    assert "Not built by CI" in text
