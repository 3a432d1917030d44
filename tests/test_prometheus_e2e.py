"""End to end: a real Prometheus scrapes a real sonde-exporter with the shipped files.

Prometheus (Debian package) runs on loopback with grafana/prometheus.yml, its ports and
targets adjusted, a 1s scrape (2s for email) and rule evaluation interval, and grafana/rules/.
It scrapes sonde-exporter, started as a process, probing loopback targets: a listening TCP port, a
refused one, a TLS listener, ICMP echo to 127.0.0.1 (the exporter needs ICMP sockets: as
root, CI's user, it gets the shared raw socket) and an email round trip through the real
Postfix + Dovecot of tests/mailstack.py. Two jobs of the test's own exercise the probe
policies (README, "Probe policies"): config.yml's tcp_strict module (retries, degraded time,
an assertion) against Postfix's SMTP greeting and the refused port, and a should_fail module
against the refused port. The tests then ask Prometheus' HTTP API what a user's
Prometheus would know: every job up, the probe results, healthy rules, the alert for the
refused port (pending: the shipped `for:` is minutes, the alert is pending from the first
evaluation), and data behind every dashboard query.

Each probe job also has a twin with the classic blackbox_exporter relabeling (the target in
`instance`, no `target` or `module` label), as most users who switch keep it: the dashboard's
queries must return data for those jobs too, with no legend or table column left blank.
"""

from __future__ import annotations

import copy
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
import yaml
from grafana_files import (
    ALL,
    GRAFANA,
    ROOT,
    SCRAPE_CONFIG,
    PanelQuery,
    crosses,
    grafana_query,
    grafana_rules,
    grafana_threshold,
    load_dashboard,
    panel_queries,
    parse_label_values,
    prometheus_alerts,
    query_variables,
    run_promtool,
    scrape_config,
    substitute,
    tool,
)
from mailstack import AUTHRES_SUBJECT, MailStack
from processes import LoopbackServer, Process, refusing_port, wait_for

from sonde_exporter.durations import parse_duration
from sonde_exporter.monitors.identity import config_monitor_id

pytestmark = [pytest.mark.root, pytest.mark.mailstack, pytest.mark.prometheus]

EXPORTER_ADDRESS = "localhost:10115"  # as written in grafana/prometheus.yml
EXPORTER_JOB = "sonde-exporter"
T = TypeVar("T")
WAIT = 60.0  # upper bound for each wait; on this machine each takes a few seconds
POLL = 0.25  # Prometheus' view changes once a scrape (1s): no need to ask it more often

# Scheduled monitors (README, "Scheduled monitors"): the exporter checks these itself and
# grafana/prometheus.yml's sonde-monitors job scrapes their results from /monitors/metrics with
# honor_labels. name -> (role of the target, status). The one in maintenance fails as the
# active one does, and no alert may name it.
MONITOR_JOB = "sonde-monitors"
MONITORS = {
    "open-port": ("open", "active"),
    "closed-port": ("closed", "active"),
    "closed-quiet": ("closed", "maintenance"),
}
MONITOR_LABELS = {"team": "sre"}  # config.yml's example monitor has these

EMAIL_JOB = "sonde-email"
EMAIL_MODULE = "email_roundtrip"  # config.yml's email module, probed by the sonde-email job
EMAIL_USER = "prometheus"  # the mail stack's mailbox for this test alone
# The email job keeps a timing of its own, scaled down as the others' 1s: a probe budget of
# 1.5s (scrape_timeout minus --timeout-offset), where a round trip takes ~30ms on loopback.
EMAIL_SCRAPE = {"scrape_interval": "2s", "scrape_timeout": "2s"}

# Probe jobs of the test's own, beside those of grafana/prometheus.yml: job -> module.
STRICT_JOB, STRICT_MODULE = "sonde-tcp-strict", "tcp_strict"  # config.yml's policies example
INVERTED_JOB, INVERTED_MODULE = "sonde-tcp-closed", "tcp_closed"  # should_fail, added here
POLICY_JOBS = {STRICT_JOB: STRICT_MODULE, INVERTED_JOB: INVERTED_MODULE}
TIMEOUT_OFFSET = 0.5  # the exporter's default --timeout-offset

# Twin of each probe job with the classic blackbox_exporter relabeling: "classic-sonde-tcp", ...
CLASSIC = "classic-"
# Grafana's legend templates: {{label}}.
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")

# Dashboard queries that are empty while everything works, so an empty answer is right here.
EMPTY_ON_SUCCESS = {
    # up == 0 of probe jobs: only when Prometheus cannot scrape a probe at all.
    "Probe scrapes failing [A]",
}


@dataclass
class Stack:
    prometheus: str  # base URL
    exporter: str  # host:port, the instance label of every job
    targets: dict[str, str]  # role -> target
    jobs: dict[str, list[str]]  # probe job -> its targets
    classic: dict[str, list[str]]  # classic-relabeling twin of each probe job -> its targets
    processes: list[Process]  # the exporter, then Prometheus
    email_password: str  # must show up nowhere

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # Prometheus explains a 400 in the body
            raise AssertionError(
                f"{url}: {exc.code} {exc.read().decode(errors='replace')}"
            ) from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts


def address(labels: dict[str, str]) -> str:
    """The probed address of a probe series under either relabeling."""
    return labels.get("target") or labels["instance"]


def eventually(observe: Callable[[], T], expected: T, timeout: float = WAIT) -> None:
    """Poll until `observe()` equals `expected`, then return; else fail showing the last look.

    Prometheus' view changes with every 1s scrape. One scrape slowed past its timeout by a
    loaded machine must not fail a test; a state that never comes does.
    """
    deadline = time.monotonic() + timeout
    while True:
        observed = observe()
        if observed == expected:
            return
        if time.monotonic() > deadline:
            assert observed == expected, f"still not so after {timeout:g}s"
        time.sleep(POLL)


def exporter_config(
    path: Path, ca_file: Path, mail: MailStack, targets: dict[str, str]
) -> tuple[Path, dict[str, str]]:
    """The shipped config.yml, with the test CA trusted by the tcp_tls module, the email
    module sending to the mail stack, a should_fail module ("this port must be closed") and
    the MONITORS in place of its example monitor; and the environment that holds the mailbox
    password."""
    config = yaml.safe_load((ROOT / "config.yml").read_text())
    (example,) = config["monitors"]
    assert example["labels"] == MONITOR_LABELS
    config["monitors"] = [
        {**example, "name": name, "target": targets[role], "status": status}
        | {"interval": "1s", "timeout": "500ms"}  # at the scrape's pace, as the jobs here
        for name, (role, status) in MONITORS.items()
    ]
    assert INVERTED_MODULE not in config["modules"]
    config["modules"][INVERTED_MODULE] = {"prober": "tcp", "timeout": "5s", "should_fail": True}
    config["modules"]["tcp_tls"]["tcp"]["tls_config"]["ca_file"] = str(ca_file)
    email = config["modules"][EMAIL_MODULE]["email"]
    # As shipped: submission with STARTTLS + AUTH, then IMAPS, with the password read from
    # the environment variable the module names (never in the file or a URL).
    assert (email["smtp"]["url"].split(":")[0], email["smtp"]["starttls"]) == ("smtp", "always")
    assert email["receive"]["url"].startswith("imaps://")
    env = {email[side]["password_env"]: mail.passwords[EMAIL_USER] for side in ("smtp", "receive")}
    tls = {"tls_config": {"ca_file": str(mail.ca_file)}}
    email["smtp"].update(url=mail.url("submission"), username=EMAIL_USER, **tls)
    # Poll fast: the shipped 2s would outlast this test's 1.5s probe budget.
    email["receive"].update(url=mail.url("imaps"), username=EMAIL_USER, poll_interval="50ms", **tls)
    email["from"] = email["to"] = mail.address(EMAIL_USER)
    # The stack gives mails with this subject an Authentication-Results header: verdicts too.
    email["subject_prefix"] = f"{AUTHRES_SUBJECT}sonde-exporter probe"
    path.write_text(yaml.safe_dump(config))
    return path, env


def prometheus_config(path: Path, exporter: str, jobs: dict[str, list[str]]) -> Path:
    """grafana/prometheus.yml with the test's exporter address, targets and 1s intervals, plus
    the POLICY_JOBS, shaped like its sonde-tcp job."""
    text = SCRAPE_CONFIG.read_text()
    assert EXPORTER_ADDRESS in text
    config = yaml.safe_load(text.replace(EXPORTER_ADDRESS, exporter))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(GRAFANA / pattern) for pattern in config["rule_files"]]
    probe_jobs = {
        j["job_name"] for j in config["scrape_configs"] if j.get("metrics_path") == "/probe"
    }
    # Never let the example targets through: the test probes loopback only.
    assert probe_jobs == set(jobs) - set(POLICY_JOBS), (
        "give every probe job of grafana/prometheus.yml test targets"
    )
    (tcp,) = [job for job in config["scrape_configs"] if job["job_name"] == "sonde-tcp"]
    config["scrape_configs"] += [
        {**copy.deepcopy(tcp), "job_name": name, "params": {"module": [module]}}
        for name, module in POLICY_JOBS.items()
    ]
    for job in config["scrape_configs"]:
        own_timeout = job.pop("scrape_timeout", None)
        job.pop("scrape_interval", None)
        if job["job_name"] == EMAIL_JOB:
            assert own_timeout, "the email job needs a scrape_timeout of its own"
            job.update(EMAIL_SCRAPE)
        if job["job_name"] in jobs:
            job["static_configs"] = [{"targets": jobs[job["job_name"]]}]
    config["scrape_configs"] += [
        classic_twin(job, exporter) for job in config["scrape_configs"] if job["job_name"] in jobs
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_promtool("check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def classic_twin(job: dict[str, Any], exporter: str) -> dict[str, Any]:
    """The probe job with blackbox_exporter's classic relabeling: the target becomes `instance`,
    and no `target` or `module` label is set (the module is a URL parameter only)."""
    twin = copy.deepcopy(job)
    twin["job_name"] = CLASSIC + job["job_name"]
    twin["relabel_configs"] = [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": exporter},
    ]
    return twin


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mail_stack: MailStack) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus-e2e")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    server_tls = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.configure_cert(context)

    open_server = LoopbackServer()
    tls_server = LoopbackServer(tls=context)
    refused = refusing_port()
    targets = {
        "open": f"127.0.0.1:{open_server.port}",
        "closed": f"127.0.0.1:{refused.getsockname()[1]}",
        "tls": f"127.0.0.1:{tls_server.port}",
        "icmp": "127.0.0.1",
        "email": f"127.0.0.1:{mail_stack.ports['submission']}",
        "smtp": f"127.0.0.1:{mail_stack.ports['smtp']}",  # a greeting for tcp_strict
    }
    # One entry per probe job of grafana/prometheus.yml (prometheus_config() enforces it),
    # and of POLICY_JOBS.
    jobs = {
        "sonde-tcp": [targets["open"], targets["closed"]],
        "sonde-tcp-tls": [targets["tls"]],
        "sonde-icmp": [targets["icmp"]],
        EMAIL_JOB: [targets["email"]],
        STRICT_JOB: [targets["smtp"], targets["closed"]],
        INVERTED_JOB: [targets["closed"]],
    }
    config, secrets = exporter_config(tmp / "sonde.yml", tmp / "ca.pem", mail_stack, targets)
    processes: list[Process] = []
    try:
        exporter = Process(
            "sonde-exporter",
            [
                sys.executable, "-m", "sonde_exporter",
                "--config.file", str(config),
                "--web.listen-address", "127.0.0.1:0",
                "--storage.path", str(tmp / "sonde.db"),
            ],
            tmp,
            env={**os.environ, **secrets},
        )  # fmt: skip
        processes.append(exporter)
        address = f"127.0.0.1:{exporter.wait_listening()}"
        _assert_icmp_usable(address)
        prometheus = Process(
            "prometheus",
            [
                tool("prometheus"),
                f"--config.file={prometheus_config(tmp / 'prometheus.yml', address, jobs)}",
                f"--storage.tsdb.path={tmp / 'data'}",
                "--web.listen-address=127.0.0.1:0",
                "--log.level=warn",
            ],
            tmp,
        )
        processes.append(prometheus)
        stack = Stack(
            f"http://127.0.0.1:{prometheus.wait_listening()}",
            address,
            targets,
            jobs,
            {CLASSIC + job: job_targets for job, job_targets in jobs.items()},
            processes,
            mail_stack.passwords[EMAIL_USER],
        )
        _wait_until_evaluated(stack)
        yield stack
    finally:
        for process in reversed(processes):
            process.stop()
        open_server.close()
        tls_server.close()
        refused.close()
    for process in processes:  # no process outlives the test
        assert process.proc.poll() is not None


def _assert_icmp_usable(exporter: str) -> None:
    """Fail at once, saying why, when the exporter may open no ICMP socket for IPv4."""
    with urllib.request.urlopen(f"http://{exporter}/metrics", timeout=10) as response:
        text = response.read().decode()
    modes = re.findall(r'^sonde_icmp_socket_mode\{ip_protocol="ip4",mode="(\w+)"\} 1', text, re.M)
    assert modes in (["raw"], ["datagram"]), (
        f"the exporter cannot send ICMP (socket mode {modes}): run the tests as root (CI does) "
        "or with this user's group inside net.ipv4.ping_group_range"
    )


def _wait_until_ready(stack: Stack) -> None:
    """Prometheus listens before its storage is up, and answers 503 to queries until then."""

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{stack.prometheus}/-/ready", timeout=10) as response:
                return bool(response.status == 200)
        except OSError:  # refused, or an HTTPError 503 while it starts
            return False

    wait_for("Prometheus to be ready", ready, WAIT, POLL)


def _wait_until_evaluated(stack: Stack) -> None:
    """At least two scrapes of every target, then a rule evaluation of every group after that."""
    _wait_until_ready(stack)
    expected = {(job, t) for job, ts in (stack.jobs | stack.classic).items() for t in ts}
    expected |= {(EXPORTER_JOB, stack.exporter), (MONITOR_JOB, stack.exporter)}

    def scraped_twice() -> bool:
        try:
            result = stack.query("count_over_time(up[5m]) >= 2")
        except OSError:  # Prometheus still starting
            return False
        seen = {(r["metric"]["job"], address(r["metric"])) for r in result}
        return expected <= seen

    wait_for("two scrapes of every target", scraped_twice, WAIT, POLL)
    scraped = time.time()

    def evaluated_since() -> bool:
        groups = stack.api("rules")["groups"]
        return bool(groups) and all(_timestamp(g["lastEvaluation"]) > scraped for g in groups)

    wait_for("a rule evaluation after the second scrape", evaluated_since, WAIT, POLL)


def _timestamp(rfc3339: str) -> float:
    # Go writes up to nanoseconds; Python's fromisoformat takes microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


def _by_target(results: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"]["target"]: float(r["value"][1]) for r in results}


def _twins(ours: dict[tuple[str, ...], T]) -> dict[tuple[str, ...], T]:
    """(job, address, ...) -> value of our jobs, and the same for their classic twins."""
    return ours | {(CLASSIC + key[0], *key[1:]): value for key, value in ours.items()}


def test_every_job_is_up(stack: Stack):
    def jobs_up() -> dict[str, set[tuple[str, float]]]:
        out: dict[str, set[tuple[str, float]]] = {}
        for r in stack.query("up"):
            out.setdefault(r["metric"]["job"], set()).add(
                (r["metric"]["instance"], float(r["value"][1]))
            )
        return out

    # Every job up, and the exporter's address is the instance of every job (panels join on it);
    # the classic twins have their targets as instances.
    expected = {job: {(stack.exporter, 1.0)} for job in [EXPORTER_JOB, MONITOR_JOB, *stack.jobs]}
    expected |= {job: {(t, 1.0) for t in targets} for job, targets in stack.classic.items()}
    eventually(jobs_up, expected)


def test_probe_results(stack: Stack):
    t = stack.targets

    def results() -> dict[tuple[str, str], tuple[str | None, float]]:
        return {
            (r["metric"]["job"], address(r["metric"])): (
                r["metric"].get("module"),
                float(r["value"][1]),
            )
            for r in stack.query("probe_success")
        }

    ours = {
        ("sonde-tcp", t["open"]): ("tcp", 1.0),
        ("sonde-tcp", t["closed"]): ("tcp", 0.0),
        ("sonde-tcp-tls", t["tls"]): ("tcp_tls", 1.0),
        ("sonde-icmp", t["icmp"]): ("icmp", 1.0),
        (EMAIL_JOB, t["email"]): (EMAIL_MODULE, 1.0),
        (STRICT_JOB, t["smtp"]): (STRICT_MODULE, 1.0),
        (STRICT_JOB, t["closed"]): (STRICT_MODULE, 0.0),
        (INVERTED_JOB, t["closed"]): (INVERTED_MODULE, 1.0),  # closed, as should_fail wants
    }
    classic = {(CLASSIC + job, where): (None, ok) for (job, where), (_, ok) in ours.items()}
    monitors = {
        (MONITOR_JOB, t["open"]): ("tcp", 1.0),
        (MONITOR_JOB, t["closed"]): ("tcp", 0.0),  # closed-port and closed-quiet
    }
    eventually(results, ours | classic | monitors)


def test_closed_port_fails_with_connect_refused(stack: Stack):
    def reasons() -> dict[tuple[str, str], str]:
        return {
            (r["metric"]["job"], address(r["metric"])): r["metric"]["reason"]
            for r in stack.query("probe_failure_reason == 1")
        }

    closed = stack.targets["closed"]
    ours = {("sonde-tcp", closed): "connect_refused", (STRICT_JOB, closed): "connect_refused"}
    eventually(reasons, _twins(ours) | {(MONITOR_JOB, closed): "connect_refused"})


def test_probe_policies_show_in_the_metrics(stack: Stack):
    """tcp_strict: Postfix's greeting passes at the first attempt, its assertion holds, and it
    is not degraded (a greeting over 300ms on a loaded machine comes and goes); the refused port
    gets two attempts, both connect_refused: the 0.5s budget has room for the first retry's
    200ms backoff, not for the second's 400ms. tcp_closed: the raw outcome, connect_refused,
    flipped into a success."""
    t = stack.targets
    strict, closed = t["smtp"], t["closed"]

    def by_probe(expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            (r["metric"]["job"], address(r["metric"]), *(r["metric"][name] for name in labels)): (
                float(r["value"][1])
            )
            for r in stack.query(expr)
        }

    def observed() -> dict[str, dict[tuple[str, ...], float]]:
        return {
            "attempts": by_probe("probe_attempts"),
            "failed attempts": by_probe("probe_attempt_failure_reason", "attempt", "reason"),
            "degraded": by_probe("probe_degraded"),
            "assertions": by_probe("probe_assertion_success", "assertion", "source", "comparison"),
            "raw": by_probe("probe_raw_success"),
            "raw reasons": by_probe("probe_raw_failure_reason", "reason"),
        }

    eventually(
        observed,
        {
            "attempts": _twins({(STRICT_JOB, strict): 1.0, (STRICT_JOB, closed): 2.0}),
            "failed attempts": _twins(
                {
                    (STRICT_JOB, closed, "1", "connect_refused"): 1.0,
                    (STRICT_JOB, closed, "2", "connect_refused"): 1.0,
                }
            ),
            "degraded": _twins({(STRICT_JOB, strict): 0.0, (STRICT_JOB, closed): 0.0}),
            "assertions": _twins({(STRICT_JOB, strict, "0", "response_data", "contains"): 1.0}),
            "raw": _twins({(INVERTED_JOB, closed): 0.0}),
            "raw reasons": _twins({(INVERTED_JOB, closed, "connect_refused"): 1.0}),
        },
    )


def test_tls_targets_report_their_certificates(stack: Stack):
    """The TLS listener's, and the SMTP server's after STARTTLS."""
    tls_targets = {stack.targets["tls"], stack.targets["email"]}
    expiry = '(probe_ssl_earliest_cert_expiry{target!=""} - time()) / 86400'
    eventually(lambda: _by_target(stack.query(expiry)).keys(), tls_targets)
    days = _by_target(stack.query(f"last_over_time(({expiry})[1m:1s])"))
    for target in tls_targets:
        assert days[target] > 14  # trustme's certificates are long-lived


def test_icmp_target_reports_packets_loss_and_rtt(stack: Stack):
    selector = f'{{target="{stack.targets["icmp"]}"}}'

    counts = ("packets_sent", "packets_received", "packet_loss_ratio", "duplicate_replies")

    def packets() -> dict[str, float]:
        return {
            name: float(r["value"][1])
            for name in counts
            for r in stack.query(f"probe_icmp_{name}{selector}")
        }

    # The icmp module of config.yml: 3 echo requests, all answered on loopback.
    eventually(packets, dict(zip(counts, (3.0, 3.0, 0.0, 0.0), strict=True)))
    rtt = {
        r["metric"]["stat"]: float(r["value"][1])
        for r in stack.query(f"probe_icmp_rtt_seconds{selector}")
    }
    assert set(rtt) == {"min", "avg", "max", "stddev"}
    assert 0 < rtt["min"] <= rtt["avg"] <= rtt["max"] < 0.5  # below the 0.5s probe budget
    (hop,) = stack.query(f"probe_icmp_reply_hop_limit{selector}")
    assert float(hop["value"][1]) == 64  # Linux's default TTL, not decremented on loopback


EMAIL_PHASES = {
    *("smtp_connect", "smtp_tls", "smtp_auth", "smtp_send"),
    *("receive_connect", "receive_tls", "receive_auth", "receive_retrieve", "receive_delete"),
}
# What tests/mailstack.py writes into the Authentication-Results header of these mails.
STACK_VERDICTS = {("dkim", "pass"), ("spf", "softfail"), ("dmarc", "fail")}


def test_email_target_reports_delivery_phases_and_verdicts(stack: Stack):
    selector = f'{{target="{stack.targets["email"]}"}}'

    def latest() -> dict[str, Any]:
        def values(expr: str) -> list[float]:
            return [float(r["value"][1]) for r in stack.query(expr + selector)]

        budget = values("probe_timeout_seconds")
        delivery = values("probe_email_delivery_seconds")
        return {
            "sent": values("probe_email_send_success"),
            # The job's 2s scrape timeout minus --timeout-offset, not the module's 45s.
            "budget": budget,
            "delivered in time": [0 < d < max(budget, default=0) for d in delivery],
            "phases": {
                r["metric"]["phase"] for r in stack.query(f"probe_email_duration_seconds{selector}")
            },
            "verdicts": {
                (r["metric"]["method"], r["metric"]["result"])
                for r in stack.query(f"probe_email_auth_result{selector} == 1")
            },
        }

    eventually(
        latest,
        {
            "sent": [1.0],
            "budget": [1.5],
            "delivered in time": [True],
            "phases": EMAIL_PHASES,
            "verdicts": STACK_VERDICTS,
        },
    )


def test_email_password_shows_up_nowhere(stack: Stack):
    """Not in a series Prometheus stored, nor in the exporter's or Prometheus' log."""
    secret = stack.email_password
    series = stack.api("series", **{"match[]": '{__name__=~".+"}'})
    assert series and not [s for s in series if secret in json.dumps(s)]
    for process in stack.processes:
        assert secret not in process.log(), process.name


def test_rules_are_loaded_and_healthy(stack: Stack):
    groups = stack.api("rules")["groups"]
    files = {Path(g["file"]).name for g in groups}
    assert files == {p.name for p in (GRAFANA / "rules").glob("*.rules.yml")}
    rules = [r for g in groups for r in g["rules"]]
    assert {r["name"] for r in rules if r["type"] == "alerting"} == set(prometheus_alerts())
    unhealthy = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert unhealthy == []


def test_probe_failing_alert_for_the_closed_port_only(stack: Stack):
    """Probed by the tcp and tcp_strict modules (which retries it) and the closed-port monitor;
    tcp_closed passes it, and the closed-quiet monitor, in maintenance, stays silent."""
    closed = stack.targets["closed"]
    classic_job = CLASSIC + "sonde-tcp"
    failing_jobs = {"sonde-tcp", classic_job, STRICT_JOB, CLASSIC + STRICT_JOB, MONITOR_JOB}

    def failing_alerts() -> dict[str, dict[str, Any]] | None:
        alerts = {
            a["labels"]["job"]: a
            for a in stack.alerts()
            if a["labels"]["alertname"] == "SondeProbeFailing"
        }
        return alerts if set(alerts) == failing_jobs else None

    alerts = wait_for("SondeProbeFailing to be pending for all 5 jobs", failing_alerts, WAIT, POLL)
    assert alerts[MONITOR_JOB]["labels"]["monitor"] == "closed-port"
    # Failing as long as closed-port, whose alert is pending: evaluated with the same data.
    quiet = stack.query('probe_success{monitor="closed-quiet"} == 0')
    assert [r["metric"]["target"] for r in quiet] == [closed]
    for alert in alerts.values():
        assert address(alert["labels"]) == closed
        assert alert["state"] in {"pending", "firing"}
        assert alert["labels"]["severity"] == "critical"
        # The description looked the failure reason up in Prometheus.
        assert "Failure reason: connect_refused." in alert["annotations"]["description"]
    ours, classic = alerts["sonde-tcp"]["annotations"], alerts[classic_job]["annotations"]
    assert ours["summary"] == f"Probe of {closed} (tcp) is failing"
    assert f"run by {stack.exporter}," in ours["description"]
    # No target or module label: the target from instance, the module by the job's name.
    assert classic["summary"] == f"Probe of {closed} ({classic_job}) is failing"
    assert f"run by the exporter of job {classic_job}," in classic["description"]

    # No alert of any kind for the healthy targets or the exporter, and none but
    # SondeProbeFailing for the closed port: not SondeProbeFlapping for the probes that retried
    # it, nor anything for the should_fail job it passes. The rules have been evaluated since
    # every target was scraped twice, so a wrong alert would be pending, and stay so; only a
    # real, momentary scrape failure (or a degraded probe on a loaded machine) comes and goes.
    def others() -> list[dict[str, str]]:
        return [
            a["labels"]
            for a in stack.alerts()
            if (a["labels"]["alertname"], address(a["labels"])) != ("SondeProbeFailing", closed)
            or a["labels"].get("monitor") == "closed-quiet"
        ]

    eventually(others, [])


def test_variable_queries_list_the_targets(stack: Stack):
    dashboard = load_dashboard()
    variables = query_variables(dashboard)

    def values() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for name, query in variables.items():
            selector, label = parse_label_values(query)
            params = {}
            if selector:
                params["match[]"] = substitute(selector, dict.fromkeys(variables, ALL))
            out[name] = set(stack.api(f"label/{label}/values", **params))
        return out

    eventually(
        values,
        {
            "job": set(stack.jobs) | set(stack.classic) | {MONITOR_JOB},
            # The classic twins add no module or target, and their targets as instances.
            "module": {"tcp", "tcp_tls", "icmp", EMAIL_MODULE, *POLICY_JOBS.values()},
            "instance": {stack.exporter, *stack.targets.values()},
            "target": set(stack.targets.values()),
        },
    )


def picked(*values: str) -> str:
    """A multi-value variable with `values` picked, as Grafana writes it into a query: each value
    regex-escaped, then escaped for the PromQL string."""
    return "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in values) + ")"


def variable_values(stack: Stack, picks: str) -> dict[str, str]:
    """All of every variable, but: one exporter picked, or the classic jobs only."""
    values = dict.fromkeys(query_variables(load_dashboard()), ALL)
    if picks == "one-exporter":  # the exporter-health row must still match it
        values["instance"] = picked(stack.exporter)
    elif picks == "classic":  # every probe panel shows these jobs alone
        values["job"] = picked(*stack.classic)
    return values


PICKS = ["all", "one-exporter", "classic"]


@pytest.mark.parametrize("picks", PICKS)
def test_every_dashboard_query_returns_data(stack: Stack, picks: str):
    """Each panel query, variables substituted, has data; except those named EMPTY_ON_SUCCESS."""
    values = variable_values(stack, picks)
    queries = panel_queries(load_dashboard())
    assert {q.key for q in queries} >= EMPTY_ON_SUCCESS, "EMPTY_ON_SUCCESS names a missing query"

    def wrong() -> dict[str, list[str]]:
        """Queries without data, and queries expected empty that have some."""
        empty, unexpected = [], []
        for query in queries:
            result = stack.query(substitute(query.expr, values))
            if query.key in EMPTY_ON_SUCCESS and result:
                unexpected.append(f"{query.key}: {result}")
            elif query.key not in EMPTY_ON_SUCCESS and not result:
                empty.append(query.key)
        return {"without data": empty, "expected empty": unexpected}

    eventually(wrong, {"without data": [], "expected empty": []})


def blanks(query: PanelQuery, series: dict[str, str]) -> list[str]:
    """What Grafana would show blank for one returned series: a label its legend template names
    that the series lacks, or, in a table of probe series, an empty target or module column."""
    names = LEGEND_LABEL.findall(query.legend)
    if query.panel_type == "table" and "probe_" in query.expr:
        names += ["target", "module"]
    return [name for name in names if not series.get(name)]


@pytest.mark.parametrize("picks", PICKS)
def test_no_legend_or_table_column_is_blank(stack: Stack, picks: str):
    """Every series a panel query returns renders its legend and its target and module columns
    in full: for the classic twins too, whose series carry neither label."""
    values = variable_values(stack, picks)
    queries = panel_queries(load_dashboard())
    targets = set(stack.targets.values())

    def wrong() -> dict[str, list[str]]:
        blank, unknown = [], []
        for query in queries:
            for series in (r["metric"] for r in stack.query(substitute(query.expr, values))):
                if missing := blanks(query, series):
                    blank.append(f"{query.key}: {missing} of {series}")
                # Under the classic relabeling the target column is the probed address.
                if picks == "classic" and "target" in series and series["target"] not in targets:
                    unknown.append(f"{query.key}: {series}")
        return {"blank": blank, "not a target": unknown}

    eventually(wrong, {"blank": [], "not a target": []})


def test_blanks_finds_an_unnamed_series():
    """The check above can fail: a series without the labels its legend or table names."""
    legend = PanelQuery(
        1, "t", "A", "probe_success", False, "{{target}} ({{module}})", "timeseries"
    )
    assert blanks(legend, {"job": "j", "instance": "i", "module": "tcp"}) == ["target"]
    table = PanelQuery(2, "t", "A", "probe_success", True, "__auto", "table")
    assert blanks(table, {"job": "j", "instance": "i"}) == ["target", "module"]
    assert blanks(table, {"target": "t", "module": "m"}) == []


def test_status_table_shows_the_failure_reason(stack: Stack):
    (status,) = [q for q in panel_queries(load_dashboard()) if q.title == "Status per target"]
    expr = substitute(status.expr, dict.fromkeys(["job", "module", "instance", "target"], ALL))

    def rows() -> dict[tuple[str, str], tuple[float, str | None]]:
        # The target column, for the classic twins too (taken from instance there).
        return {
            (r["metric"]["job"], r["metric"]["target"]): (
                float(r["value"][1]),
                r["metric"].get("reason"),
            )
            for r in stack.query(expr)
        }

    t = stack.targets
    ours = {
        ("sonde-tcp", t["open"]): (1.0, None),
        ("sonde-tcp", t["closed"]): (0.0, "connect_refused"),
        ("sonde-tcp-tls", t["tls"]): (1.0, None),
        ("sonde-icmp", t["icmp"]): (1.0, None),
        (EMAIL_JOB, t["email"]): (1.0, None),
        (STRICT_JOB, t["smtp"]): (1.0, None),
        (STRICT_JOB, t["closed"]): (0.0, "connect_refused"),
        (INVERTED_JOB, t["closed"]): (1.0, None),
    }
    monitors = {
        (MONITOR_JOB, t["open"]): (1.0, None),
        (MONITOR_JOB, t["closed"]): (0.0, "connect_refused"),
    }
    eventually(rows, _twins(ours) | monitors)


# The assertion of config.yml's tcp_strict module: a row of the assertion table.
STRICT_ASSERTION = {"assertion": "0", "source": "response_data", "comparison": "contains"}


@pytest.mark.parametrize(
    ("panel_id", "job", "module", "roles", "columns", "extra"),
    [
        (506, "sonde-icmp", "icmp", ("icmp",), 7, {}),
        (606, EMAIL_JOB, EMAIL_MODULE, ("email",), 5, {}),
        (703, STRICT_JOB, STRICT_MODULE, ("smtp", "closed"), 4, {}),
        # Assertions are evaluated when the prober succeeded: not for the refused port.
        (705, STRICT_JOB, STRICT_MODULE, ("smtp",), 2, STRICT_ASSERTION),
    ],
    ids=["icmp", "email", "retries", "assertions"],
)
def test_per_target_table_queries_merge_into_one_row_per_target(
    stack: Stack,
    panel_id: int,
    job: str,
    module: str,
    roles: tuple[str, ...],
    columns: int,
    extra: dict[str, str],
):
    """Grafana's merge transformation joins the table's queries on equal labels: each query
    must return exactly the same label sets, one per target of that prober (and one for the
    classic twin, its module being the job's name), with `extra` labels (per assertion)."""
    queries = [q for q in panel_queries(load_dashboard()) if q.panel_id == panel_id]
    assert len(queries) == columns
    values = dict.fromkeys(["job", "module", "instance", "target"], ALL)
    classic = CLASSIC + job
    rows = set()
    for where in (stack.targets[role] for role in roles):
        ours = {"job": job, "instance": stack.exporter, "module": module, "target": where}
        twin = {"job": classic, "instance": where, "module": classic, "target": where}
        rows |= {frozenset((ours | extra).items()), frozenset((twin | extra).items())}

    def label_sets() -> dict[str, set[frozenset[tuple[str, str]]]]:
        return {
            q.ref: {frozenset(r["metric"].items()) for r in stack.query(substitute(q.expr, values))}
            for q in queries
        }

    eventually(label_sets, {q.ref: rows for q in queries})


def test_monitor_series_keep_their_labels(stack: Stack):
    """honor_labels: the monitor's own labels, as /monitors/metrics wrote them; instance is the
    exporter, as in the probe jobs; and each monitor's state."""

    def series() -> dict[str, dict[str, str]]:
        return {
            r["metric"]["monitor"]: r["metric"]
            for r in stack.query(f'probe_success{{job="{MONITOR_JOB}"}}')
        }

    expected = {
        name: {
            "__name__": "probe_success",
            "job": MONITOR_JOB,
            "instance": stack.exporter,
            "monitor": name,
            "monitor_id": config_monitor_id("tcp", name),
            "module": "tcp",
            "target": stack.targets[role],
            **MONITOR_LABELS,
        }
        for name, (role, _) in MONITORS.items()
    }
    eventually(series, expected)
    states = {
        r["metric"]["monitor"]: r["metric"]["state"]
        for r in stack.query(f'sonde_monitor_state{{job="{MONITOR_JOB}"}} == 1')
    }
    assert states == {name: status for name, (_, status) in MONITORS.items()}


def test_panels_show_scheduled_monitors(stack: Stack):
    """Every panel that shows the sonde-tcp job's probes shows the TCP monitors' too, with
    the job variable set to the monitors' job alone."""
    queries = panel_queries(load_dashboard())

    def with_data(job: str) -> set[str]:
        values = dict.fromkeys(query_variables(load_dashboard()), ALL)
        values["job"] = picked(job)
        return {q.key for q in queries if stack.query(substitute(q.expr, values))}

    def missing() -> list[str]:
        return sorted(with_data("sonde-tcp") - with_data(MONITOR_JOB))

    eventually(missing, [])


def test_grafana_rules_agree_with_prometheus_alerts(stack: Stack):
    """Each Grafana-managed rule picks out the same series as the Prometheus alert of its name."""

    def compare() -> dict[str, tuple[set[frozenset[tuple[str, str]]], ...]]:
        active: dict[str, set[frozenset[tuple[str, str]]]] = {}
        for alert in stack.alerts():
            labels = dict(alert["labels"])
            name = labels.pop("alertname")
            labels.pop("severity")
            active.setdefault(name, set()).add(frozenset(labels.items()))
        differ = {}
        for rule in grafana_rules():
            op, threshold = grafana_threshold(rule)
            grafana = set()
            for series in stack.query(grafana_query(rule)):
                if crosses(op, float(series["value"][1]), threshold):
                    labels = {k: v for k, v in series["metric"].items() if k != "__name__"}
                    grafana.add(frozenset(labels.items()))
            prometheus = active.get(rule["title"], set())
            if grafana != prometheus:
                differ[rule["title"]] = (grafana, prometheus)
        assert active.get("SondeProbeFailing"), "the comparison must cover a firing case"
        return differ

    eventually(compare, {})


def test_docs_show_the_tested_scrape_config():
    """The scrape config in the docs is grafana/prometheus.yml itself, verbatim."""
    marker = "<!-- scrape-config: grafana/prometheus.yml -->"
    pages = [
        p
        for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        if marker in p.read_text()
    ]
    assert pages, "no page shows grafana/prometheus.yml"
    for page in pages:
        after = page.read_text().split(marker, 1)[1]
        block = re.match(r"\s*```yaml\n(.*?)```", after, re.S)
        assert block, f"{page.name}: the marker must be followed by a ```yaml block"
        assert block.group(1) == SCRAPE_CONFIG.read_text(), (
            f"{page.name} differs from {SCRAPE_CONFIG}"
        )
    assert scrape_config()["scrape_configs"]


def test_scrape_timeouts_leave_every_module_its_timeout():
    """Each probe job of grafana/prometheus.yml gives the module it names in config.yml the
    whole module timeout: scrape_timeout minus --timeout-offset is at least as long, and
    scrape_timeout fits in scrape_interval. Otherwise Prometheus would cut the probes short
    (an email probe would then fail as not_delivered)."""
    config = scrape_config()
    defaults = {"scrape_interval": "1m", "scrape_timeout": "10s"}  # Prometheus' own
    defaults.update({k: v for k, v in config.get("global", {}).items() if k in defaults})
    modules = yaml.safe_load((ROOT / "config.yml").read_text())["modules"]
    for job in config["scrape_configs"]:
        if job.get("metrics_path") != "/probe":
            continue
        timing = {key: parse_duration(job.get(key, defaults[key])) for key in defaults}
        (module,) = job["params"]["module"]
        timeout = parse_duration(modules[module]["timeout"])
        assert timing["scrape_timeout"] - TIMEOUT_OFFSET >= timeout, job["job_name"]
        assert timing["scrape_timeout"] <= timing["scrape_interval"], job["job_name"]
