"""Probe policy settings at load: defaults, the issue's shape, and every refusal naming the
file, the line and the field."""

from __future__ import annotations

import textwrap

import pytest

from sonde_exporter.config import ConfigError, dump_yaml, parse_config
from sonde_exporter.config.policies import Retries

STRICT = """
modules:
  tcp_strict:
    prober: tcp
    timeout: 10s
    tcp:
      query_response:
        - expect: "^OK"
    retries: {max: 2, backoff: exponential, delay: 200ms, on: [network_error]}
    degraded_response_time: 300ms
    max_response_time: 2s
    should_fail: false
    assertions:
      - {source: response_data, comparison: contains, target: "OK"}
      - {source: response_time, comparison: less_than, target: 500ms}
"""


def test_the_issue_shape_loads() -> None:
    module = parse_config(STRICT, "c.yml").modules["tcp_strict"]
    assert module.retries == Retries(
        max=2, backoff="exponential", delay="200ms", on=("network_error",)
    )
    assert (module.degraded_response_time, module.max_response_time) == (0.3, 2.0)
    assert module.should_fail is False
    first, second = module.assertions
    assert (first.source, first.comparison, first.text) == ("response_data", "contains", b"OK")
    assert (second.source, second.comparison, second.number) == ("response_time", "less_than", 0.5)
    assert module.has_policies


def test_dump_round_trips() -> None:
    """/config and debug output show the policies, and what they show loads back the same."""
    config = parse_config(STRICT, "c.yml")
    text = dump_yaml(config)
    assert "'on':\n      - network_error" in text
    assert dump_yaml(parse_config(text, "again.yml")) == text


def test_defaults() -> None:
    module = parse_config("modules:\n  m:\n    prober: tcp\n", "c.yml").modules["m"]
    assert (module.retries, module.degraded_response_time, module.max_response_time) == (
        None,
        None,
        None,
    )
    assert (module.should_fail, module.assertions, module.has_policies) == (False, (), False)
    retries = Retries()
    assert (retries.max, retries.backoff, retries.delay, retries.on) == (
        2,
        "fixed",
        0.1,
        ("network_error",),
    )


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        ("fixed", [0.2, 0.2, 0.2]),
        ("linear", [0.2, 0.4, 0.6000000000000001]),
        ("exponential", [0.2, 0.4, 0.8]),
    ],
)
def test_backoff(backoff: str, delays: list[float]) -> None:
    retries = Retries(max=3, backoff=backoff, delay="200ms")  # type: ignore[arg-type]
    assert [retries.delay_before(n) for n in (1, 2, 3)] == delays
    assert retries.total_delay == pytest.approx(sum(delays))


def test_quoted_on_and_any() -> None:
    text = "modules:\n  m:\n    prober: tcp\n    retries: {'on': [any]}\n"
    assert parse_config(text, "c.yml").modules["m"].retries.on_any  # type: ignore[union-attr]


def test_every_prober_source_loads() -> None:
    text = """
    modules:
      ping:
        prober: icmp
        timeout: 2s
        assertions:
          - {source: packet_loss, comparison: equals, target: 0}
          - {source: packet_loss, comparison: less_than, target: 0.5}
          - {source: rtt_avg, comparison: less_than, target: 100ms}
          - {source: rtt_max, comparison: greater_than, target: 1us}
          - {source: jitter, comparison: less_than, target: 10ms}
          - {source: response_time, comparison: less_than, target: 1s}
      banner:
        prober: tcp
        assertions:
          - {source: response_data, comparison: not_empty}
          - {source: response_data, comparison: matches, target: "(?m)^220 "}
          - {source: response_data, comparison: not_contains, target: "\\x00"}
    """
    config = parse_config(textwrap.dedent(text), "c.yml")
    assert [a.number for a in config.modules["ping"].assertions] == [0, 0.5, 0.1, 1e-6, 0.01, 1]
    banner = config.modules["banner"].assertions
    assert banner[1].pattern is not None and banner[1].pattern.search(b"x\n220 ok")
    assert banner[2].text == b"\x00"


# (module body under `modules: m:`, line, field, part of the message)
REFUSED = [
    (
        "prober: tcp\nretries: {max: 11}",
        4,
        "modules.m.retries.max",
        "less than or equal to 10",
    ),
    ("prober: tcp\nretries: {max: -1}", 4, "modules.m.retries.max", "greater than or equal to 0"),
    ("prober: tcp\nretries: {delay: 2m}", 4, "modules.m.retries.delay", "from 0s to 1m"),
    ("prober: tcp\nretries: {delay: -1s}", 4, "modules.m.retries.delay", "must not be negative"),
    ("prober: tcp\nretries: {backoff: random}", 4, "modules.m.retries.backoff", "'random'"),
    ("prober: tcp\nretries: {on: [dns]}", 4, "modules.m.retries.on[0]", "'dns' is not valid"),
    (
        "prober: tcp\nretries: {on: [any, network_error]}",
        4,
        "modules.m.retries.on",
        "expected [network_error] or [any]",
    ),
    (
        "prober: tcp\ntimeout: 1s\nretries: {max: 3, backoff: exponential, delay: 200ms}",
        5,
        "modules.m.retries",
        "4 attempts with exponential backoff from 0.2s need 1.8s",
    ),
    (
        "prober: icmp\ntimeout: 1s\nicmp: {count: 5, interval: 100ms}\nretries: {max: 2}",
        5,
        "modules.m.icmp",
        "each of the 3 attempts gets 0.267s of the 1s timeout",
    ),
    (
        "prober: tcp\ndegraded_response_time: 0s",
        4,
        "modules.m.degraded_response_time",
        "must be more than 0s",
    ),
    (
        "prober: tcp\ntimeout: 2s\nmax_response_time: 2s",
        5,
        "modules.m.max_response_time",
        "2s is not below the 2s timeout",
    ),
    (
        "prober: tcp\ndegraded_response_time: 3s\nmax_response_time: 2s",
        5,
        "modules.m.max_response_time",
        "2s is below degraded_response_time (3s)",
    ),
    (
        "prober: tcp\ndegraded_response_time: 1s\nshould_fail: true",
        5,
        "modules.m.should_fail",
        "cannot be used with degraded_response_time",
    ),
    ("prober: tcp\nshould_fail: 2", 4, "modules.m.should_fail", "valid boolean"),
    (
        "prober: tcp\nassertions:\n  - {source: response_data, comparison: matches, target: '(a'}",
        5,
        "modules.m.assertions[0]",
        "invalid regular expression '(a'",
    ),
    (
        "prober: tcp\nassertions:\n  - {source: response_data, comparison: less_than, target: 'x'}",
        5,
        "modules.m.assertions[0]",
        "less_than does not apply to response_data (bytes)",
    ),
    (
        "prober: icmp\nassertions:\n  - {source: packet_loss, comparison: less_than, "
        "target: 500ms}",
        5,
        "modules.m.assertions[0]",
        "packet_loss is a ratio from 0 to 1, not a duration",
    ),
    (
        "prober: icmp\nassertions:\n  - {source: packet_loss, comparison: less_than, target: 5}",
        5,
        "modules.m.assertions[0]",
        "5 is outside it",
    ),
    (
        "prober: icmp\nassertions:\n  - {source: packet_loss, comparison: contains, target: 0}",
        5,
        "modules.m.assertions[0]",
        "contains does not apply to packet_loss",
    ),
    (
        "prober: icmp\nassertions:\n  - {source: rtt_avg, comparison: less_than, target: 0.5}",
        5,
        "modules.m.assertions[0]",
        "rtt_avg is a duration: write the target as 500ms",
    ),
    (
        "prober: icmp\nassertions:\n  - {source: rtt_avg, comparison: equals, target: 1ms}",
        5,
        "modules.m.assertions[0]",
        "equals does not apply to rtt_avg (a duration)",
    ),
    (
        "prober: tcp\nassertions:\n  - {source: response_data, comparison: contains}",
        5,
        "modules.m.assertions[0]",
        "contains needs a target",
    ),
    (
        "prober: tcp\nassertions:\n  - {source: response_data, comparison: is_empty, target: ''}",
        5,
        "modules.m.assertions[0]",
        "is_empty takes no target",
    ),
    (
        "prober: tcp\nassertions:\n  - {source: response_data, comparison: contains, target: 200}",
        5,
        "modules.m.assertions[0]",
        "must be a string; quote it",
    ),
    (
        "prober: tcp\nassertions:\n  - {source: response_data, comparison: equals, target: no}",
        5,
        "modules.m.assertions[0].target",
        "not true/false",
    ),
    (
        "prober: tcp\nassertions:\n  - {source: jitter, comparison: less_than, target: 1s}",
        5,
        "modules.m.assertions[0]",
        "source jitter is not measured by the tcp prober (it has response_data, response_time)",
    ),
    (
        "prober: email\nemail: {smtp: {url: 'smtp://mail.example.com'}, receive: {url: "
        "'pop3://mail.example.com', username: u, password: p}, from: a@example.com, "
        "to: a@example.com}\nassertions:\n"
        "  - {source: rtt_avg, comparison: less_than, target: 1s}",
        6,
        "modules.m.assertions[0]",
        "not measured by the email prober (it has response_time, delivery_time)",
    ),
    (
        "prober: icmp\nicmp: {count: 1}\nassertions:\n"
        "  - {source: jitter, comparison: less_than, target: 1s}",
        6,
        "modules.m.assertions[0]",
        "jitter needs two replies",
    ),
    (
        "prober: tcp\ntimeout: 5s\nassertions:\n"
        "  - {source: response_time, comparison: less_than, target: 1s}\n"
        "  - {source: response_time, comparison: greater_than, target: 5s}",
        7,
        "modules.m.assertions[1]",
        "target 5s is not below the 5s timeout",
    ),
    (
        "prober: tcp\nassertions:\n  - {source: response_data, comparison: contains, "
        "target: x, property: body}",
        5,
        "modules.m.assertions[0].property",
        "unknown field",
    ),
    (
        "prober: tcp\ntimeout: 1s\nretries: {max: 4, delay: 100ms}\ntraceroute_on_error: true",
        6,
        "modules.m.traceroute_on_error",
        "the traceroute's reserve leaves 0.5s of the 1s timeout, too little for 5 attempts",
    ),
    (
        "prober: tcp\ntimeout: 5s\ntraceroute_on_error: true\ntraceroute: {max_hops: 0}",
        6,
        "modules.m.traceroute.max_hops",
        "greater than or equal to 1",
    ),
    (
        "prober: tcp\ntraceroute: {interval: 500ms}",
        4,
        "modules.m.traceroute.interval",
        "must be from 1s to 24h",
    ),
    (
        "prober: tcp\ntraceroute: {max_hops: 5}",
        4,
        "modules.m.traceroute",
        "has no effect without traceroute_on_error: true",
    ),
    (
        "prober: tcp\ntraceroute: {hops: 5}",
        4,
        "modules.m.traceroute.hops",
        "unknown field",
    ),
]


@pytest.mark.parametrize(("body", "line", "field", "message"), REFUSED)
def test_refused_at_load_with_file_line_and_field(
    body: str, line: int, field: str, message: str
) -> None:
    text = "modules:\n  m:\n" + textwrap.indent(body, "    ") + "\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "policies.yml")
    errors = str(caught.value).splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"policies.yml:{line}: {field}: "), errors[0]
    assert message in errors[0]
