"""The real process: `python -m sonde_exporter` with blackbox_exporter's flags, its logs,
start-up errors, and reloading on SIGHUP. Every wait polls observable state with a deadline."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import parse_metrics
from processes import Process, wait_for

from sonde_exporter import __version__
from sonde_exporter.cli import parse_args

ROOT = Path(__file__).parent.parent
CONFIGS = Path(__file__).parent / "configs"
EXPORTER = [sys.executable, "-m", "sonde_exporter"]

CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 2s
"""
NEW_CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 2s
  tcp_new:
    prober: tcp
    timeout: 3s
"""
BROKEN_CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 2s
    tpc: {}
"""


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXPORTER, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


class ExporterProcess(Process):
    """A running exporter on an ephemeral loopback port, its log in a file."""

    def __init__(self, config_file: Path, *flags: str) -> None:
        self.config_file = config_file
        argv = [*EXPORTER, "--config.file", str(config_file), "--web.listen-address", "127.0.0.1:0"]
        super().__init__("sonde-exporter", [*argv, *flags], config_file.parent)
        self.port = self.wait_listening()

    @property
    def lines(self) -> list[str]:
        return self.log().splitlines()

    def wait_for_log(self, text: str, timeout: float = 15) -> str:
        """The first log line containing `text`, once there is one."""

        def found() -> str | None:
            exited = self.proc.poll() is not None  # before reading: then the log is complete
            line = next((line for line in self.lines if text in line), None)
            if line is None and exited:
                raise AssertionError(f"{self.name} exited without a log line with {text!r}")
            return line

        try:
            return wait_for(f"a log line with {text!r}", found, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; log so far:\n{self.log()}") from None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str) -> float:
        return parse_metrics(self.get("/metrics")[1])[name]


@pytest.fixture
def exporter_process(tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    started: list[ExporterProcess] = []

    def start(config_text: str = CONFIG, *flags: str) -> ExporterProcess:
        config_file = tmp_path / "config.yml"
        config_file.write_text(config_text)
        started.append(ExporterProcess(config_file, *flags))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_config_check_accepts_the_shipped_config() -> None:
    result = run("--config.check")  # default --config.file is config.yml, here the shipped one
    assert (result.returncode, result.stdout, result.stderr) == (0, "OK\n", "")


def test_config_check_resolves_files_next_to_the_config(tmp_path: Path) -> None:
    result = run("--config.check", "--config.file", str(CONFIGS / "good.yml"), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "OK\n")


def test_config_check_passes_blackbox_sample_with_a_warning_for_its_http_and_dns() -> None:
    path = CONFIGS / "blackbox_sample.yml"
    result = run("--config.check", "--config.file", str(path))
    assert (result.returncode, result.stdout) == (0, "OK\n")
    assert result.stderr == (
        f"{path}: warning: these modules load, but sonde-exporter does not have their prober, "
        "so probing them answers 400: web (http), web_post (http), resolver (dns)\n"
    )


ROUND_TRIP_CONFIG = """\
modules:
  tcp_banner:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^+OK (\\\\w+)"
          labels: [{name: word, value: "${1}"}]
  ping:
    prober: icmp
    timeout: 5s
    icmp: {count: 2, ttl: 32}
  mail_implicit_tls:
    prober: email
    timeout: 30s
    email:
      smtp:
        url: smtps://127.0.0.1:465
        username: probe
        password_env: SONDE_TEST_UNSET_PASSWORD
      receive:
        url: imaps://127.0.0.1:993
        username: probe
        password_env: SONDE_TEST_UNSET_PASSWORD
      from: probe@example.com
      to: probe@example.com
  web:
    prober: http
    http: {method: GET}
"""


def test_config_endpoint_output_passes_config_check(exporter_process, tmp_path: Path) -> None:
    """What /config prints is a config: the real checker accepts it as it is."""
    exporter = exporter_process(ROUND_TRIP_CONFIG)
    status, text = exporter.get("/config")
    assert status == 200
    dumped = tmp_path / "dumped.yml"
    dumped.write_text(text)
    result = run("--config.check", "--config.file", str(dumped))
    assert (result.returncode, result.stdout) == (0, "OK\n"), result.stderr
    assert result.stderr.endswith("probing them answers 400: web (http)\n")


def test_config_check_prints_every_error_and_fails() -> None:
    path = CONFIGS / "two_errors.yml"
    result = run("--config.check", "--config.file", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:4: modules.a.timeout: invalid duration 'soon': "
        "use a number with a unit, such as 5s, 1m30s or 250ms",
        f"{path}:8: modules.b.tcp.tls: expected a valid boolean, unable to interpret input",
    ]


def test_config_check_of_a_missing_file_fails(tmp_path: Path) -> None:
    result = run("--config.check", "--config.file", str(tmp_path / "nope.yml"))
    assert result.returncode == 1
    assert "nope.yml: cannot read config file" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"sonde-exporter {__version__}\n")


def test_console_script_is_installed() -> None:
    script = shutil.which("sonde-exporter", path=os.path.dirname(sys.executable))
    assert script, "pip install -e . should install the sonde-exporter command"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert result.stdout == f"sonde-exporter {__version__}\n"


def test_bad_flag_exits_2_with_usage() -> None:
    result = run("--no-such-flag")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: sonde-exporter")
    assert "unrecognized arguments: --no-such-flag" in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--log.format", "xml"], "argument --log.format: invalid choice: 'xml'"),
        (["--log.level", "loud"], "argument --log.level: invalid choice: 'loud'"),
        (["--timeout-offset", "soon"], "argument --timeout-offset: invalid float value"),
        (["--timeout-offset", "-1"], "--timeout-offset must be a non-negative number of seconds"),
        (["--timeout-offset", "nan"], "--timeout-offset must be a non-negative number of seconds"),
        (["--history.limit", "-5"], "--history.limit must not be negative"),
        (["--web.listen-address", "nowhere"], "expected host:port or :port"),
        (["--web.listen-address", "127.0.0.1:70000"], "expected host:port or :port"),
    ],
)
def test_bad_flag_values_are_rejected(capsys, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(flags)  # in-process: the same parser as the process above, faster
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_flag_defaults() -> None:
    args = parse_args([])
    assert args.config_file == "config.yml"
    assert args.listen == [(None, 10115)]
    assert (args.timeout_offset, args.history_limit) == (0.5, 100)
    assert (args.log_level, args.log_format, args.log_prober) == ("info", "logfmt", "error")
    assert parse_args(["--web.listen-address", "[::1]:9"]).listen == [("::1", 9)]


def test_help_shows_every_default() -> None:
    result = run("--help")
    assert result.returncode == 0
    options = " ".join(result.stdout.split("options:")[1].split())  # undo the line wrapping
    helps = {h.split(" ")[0]: h for h in re.split(r" (?=--[a-z])", options)}
    for flag, default in [
        ("--config.file FILE", "config.yml"),
        ("--web.listen-address ADDRESS", ":10115"),
        ("--timeout-offset SECONDS", "0.5"),
        ("--log.level {debug,info,warn,error}", "info"),
        ("--log.format {logfmt,json}", "logfmt"),
        ("--log.prober {debug,info,warn,error}", "error"),
        ("--history.limit N", "100"),
    ]:
        name = flag.split(" ")[0]
        assert helps[name].startswith(flag), helps[name]
        assert helps[name].endswith(f"(default: {default})"), helps[name]


def test_start_with_a_bad_config_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(BROKEN_CONFIG)
    result = run("--config.file", str(path), "--web.listen-address", "127.0.0.1:0")
    assert result.returncode == 1
    assert 'msg="Error loading config"' in result.stderr
    assert f"{path}:5: modules.tcp.tpc: unknown field" in result.stderr


def test_start_on_a_busy_port_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(CONFIG)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("--config.file", str(path), "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert 'msg="Cannot listen"' in result.stderr


def test_json_logs_are_one_object_per_line(exporter_process, closed_port) -> None:
    exporter = exporter_process(CONFIG, "--log.format", "json")
    status, _ = exporter.get(f"/probe?module=tcp&target=127.0.0.1:{closed_port}")
    assert status == 200
    failed = json.loads(exporter.wait_for_log('"Probe failed"'))
    assert exporter.stop() == 0
    records = [json.loads(line) for line in exporter.lines]
    assert {"Listening on address", "Started sonde-exporter", "Shutting down"} <= {
        r["msg"] for r in records
    }
    assert failed["level"] == "error"
    assert failed["module"] == "tcp" and failed["target"] == f"127.0.0.1:{closed_port}"
    assert failed["reason"] == "connect_refused"
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)


def test_logfmt_is_the_default(exporter_process, closed_port) -> None:
    exporter = exporter_process(CONFIG, "--log.prober", "debug")
    exporter.get(f"/probe?module=tcp&target=127.0.0.1:{closed_port}")
    line = exporter.wait_for_log('msg="Beginning probe"')
    assert re.match(r"ts=\S+Z level=info logger=sonde_exporter.probe ", line)
    assert f"target=127.0.0.1:{closed_port}" in line
    assert exporter.stop() == 0
    assert all(re.match(r"ts=\S+ level=(debug|info|warn|error) ", x) for x in exporter.lines)


BANNER_CONFIG = """\
modules:
  tcp_banner:
    prober: tcp
    timeout: 2s
    tcp:
      query_response:
        - expect: "^never"
"""
FORGED = "hello\u2028ts=0 level=error msg=forged\u0085x\u202ey\u2029z"


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_a_hostile_banner_never_splits_a_log_line(exporter_process, log_format: str) -> None:
    """A server's line with U+2028, U+0085, U+202E and U+2029 is logged (Read line, then
    Probe failed) escaped: every line of the log is one record in any viewer (splitlines
    breaks on each of those characters, as viewers do)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        port = server.getsockname()[1]
        exporter = exporter_process(
            BANNER_CONFIG, "--log.prober", "debug", "--log.format", log_format
        )
        answer: list[tuple[int, str]] = []
        probe = threading.Thread(
            target=lambda: answer.append(
                exporter.get(f"/probe?module=tcp_banner&target=127.0.0.1:{port}")
            )
        )
        probe.start()
        conn, _ = server.accept()
        with conn:
            conn.sendall(FORGED.encode() + b"\n")
            probe.join(10)
        assert answer and answer[0][0] == 200
        exporter.wait_for_log("Probe failed")
    assert exporter.stop() == 0
    assert all(line.isprintable() for line in exporter.log().split("\n"))
    read = [line for line in exporter.lines if "Read line" in line]
    assert len(read) == 1
    if log_format == "json":
        records = [json.loads(line) for line in exporter.lines]
        assert [r["line"] for r in records if r["msg"] == "Read line"] == [FORGED]
    else:
        assert all(re.match(r"ts=\S+Z level=\w+ logger=", line) for line in exporter.lines)
        assert 'line="hello\\u2028ts=0 level=error msg=forged\\u0085x\\u202ey\\u2029z"' in read[0]
    assert "forged" not in "".join(line for line in exporter.lines if "Read line" not in line)


def test_sighup_reloads_a_good_config(exporter_process) -> None:
    exporter = exporter_process(CONFIG)
    assert "tcp_new" not in exporter.get("/config")[1]
    exporter.config_file.write_text(NEW_CONFIG)
    exporter.proc.send_signal(signal.SIGHUP)
    wait_for("the new config", lambda: "tcp_new" in exporter.get("/config")[1])
    assert exporter.metric("sonde_config_last_reload_successful") == 1
    exporter.wait_for_log('msg="Loaded config file"')


def test_sighup_with_a_bad_config_keeps_the_old_one(exporter_process, closed_port) -> None:
    exporter = exporter_process(CONFIG)
    started_at = exporter.metric("sonde_config_last_reload_success_timestamp_seconds")
    exporter.config_file.write_text(BROKEN_CONFIG)
    exporter.proc.send_signal(signal.SIGHUP)
    wait_for(
        "the failed reload", lambda: exporter.metric("sonde_config_last_reload_successful") == 0
    )
    error = exporter.wait_for_log('msg="Error reloading config"')
    assert f"{exporter.config_file}:5: modules.tcp.tpc: unknown field" in error
    assert exporter.metric("sonde_config_last_reload_success_timestamp_seconds") == started_at
    status, body = exporter.get(f"/probe?module=tcp&target=127.0.0.1:{closed_port}")
    assert status == 200 and "probe_success 0" in body
    assert exporter.proc.poll() is None

    exporter.config_file.write_text(NEW_CONFIG)
    exporter.proc.send_signal(signal.SIGHUP)
    wait_for(
        "the fixed reload", lambda: exporter.metric("sonde_config_last_reload_successful") == 1
    )
    assert "tcp_new" in exporter.get("/config")[1]
    assert exporter.metric("sonde_config_last_reload_success_timestamp_seconds") >= started_at


BACKTRACKING_CONFIG = """\
modules:
  pathological:
    prober: tcp
    timeout: 20s
    tcp:
      query_response:
        - expect: "(a+)+$"
          send: "next\\r"
        - expect: "^bye"
"""


def test_a_backtracking_pattern_cannot_freeze_the_exporter(exporter_process) -> None:
    """`(a+)+$` against a's followed by "!" takes about 2^n steps in a backtracking engine:
    with Python's re, forty a's held the event loop (and SIGTERM) for minutes. With RE2 the
    exporter reads twenty 60,000-byte such lines, answers /-/healthy while the probe is still
    open, and the probe succeeds well inside its 20 s timeout: linear matching of 1.2 MB takes
    milliseconds even on a loaded 2-core box, and a backtracking engine would never finish the
    first line, so the bound cannot flake and cannot pass by luck."""
    bad_line = b"a" * 60_000 + b"!\r\n"  # under the prober's 64 KiB line limit
    next_received = threading.Event()
    healthy_answered = threading.Event()

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(30)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(30)
                conn.sendall(bad_line * 20 + b"a" * 40 + b"\r\n")  # the last line matches
                if conn.makefile("rb").readline() == b"next\r\n":
                    next_received.set()
                if healthy_answered.wait(30):
                    conn.sendall(b"bye\r\n")

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        exporter = exporter_process(BACKTRACKING_CONFIG)
        answer: list[tuple[int, str]] = []
        port = listener.getsockname()[1]
        prober = threading.Thread(
            target=lambda: answer.append(
                exporter.get(f"/probe?module=pathological&target=127.0.0.1:{port}")
            )
        )
        prober.start()
        assert next_received.wait(30), "the exporter never got past the pathological lines"
        assert prober.is_alive()  # the probe waits for "bye": it is still open
        assert exporter.get("/-/healthy") == (200, "Healthy\n")
        healthy_answered.set()
        prober.join(30)
        server.join(30)

    status, body = answer[0]
    metrics = parse_metrics(body)
    assert (status, metrics["probe_success"]) == (200, 1), body
    assert metrics["probe_duration_seconds"] < 20
