"""The probe's own text exposition: exact sample lines, whatever the values and labels."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from sonde_exporter.probe_metrics import ProbeGauge, ProbeMetrics, format_value

PHASE = ProbeGauge("probe_example_seconds", 'Help with a \\ backslash\nand "quotes"', ("phase",))
PAIR = ProbeGauge("probe_example_info", "Two labels", ("a", "b"))
PLAIN = ProbeGauge("probe_example", "No labels")


def reference_value(value: float) -> str:
    """The rule written plainly: integers without a decimal point (below 1e15), floats as
    Python's shortest repr, and Prometheus' spellings of infinity and NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


@given(st.one_of(st.floats(), st.integers(-(2**70), 2**70), st.booleans()))
def test_values_are_formatted_by_the_plain_rule(value: float) -> None:
    assert format_value(value) == reference_value(value)


def test_value_spellings() -> None:
    assert [format_value(v) for v in (0, 1, 2.0, -0.0, 0.25, 1e15, 1e-05)] == [
        "0",
        "1",
        "2",
        "0",
        "0.25",
        "1000000000000000.0",
        "1e-05",
    ]
    assert [format_value(v) for v in (math.inf, -math.inf, math.nan, 3668918509)] == [
        "+Inf",
        "-Inf",
        "NaN",
        "3668918509",
    ]


def test_render_is_exact_text() -> None:
    metrics = ProbeMetrics()
    metrics.set(PLAIN, 1)
    metrics.set(PHASE, 0.5, "connect")
    metrics.set(PHASE, 2, 'we"ird\\\n')
    metrics.set(PAIR, 1, "x", "y")
    assert metrics.render() == (
        "# HELP probe_example No labels\n"
        "# TYPE probe_example gauge\n"
        "probe_example 1\n"
        '# HELP probe_example_seconds Help with a \\\\ backslash\\nand "quotes"\n'
        "# TYPE probe_example_seconds gauge\n"
        'probe_example_seconds{phase="connect"} 0.5\n'
        'probe_example_seconds{phase="we\\"ird\\\\\\n"} 2\n'
        "# HELP probe_example_info Two labels\n"
        "# TYPE probe_example_info gauge\n"
        'probe_example_info{a="x",b="y"} 1\n'
    )


@given(
    st.lists(
        st.tuples(st.text(max_size=20), st.text(max_size=20), st.floats(allow_nan=False)),
        min_size=1,
        max_size=5,
    )
)
def test_any_label_values_parse_back(samples: list[tuple[str, str, float]]) -> None:
    metrics = ProbeMetrics()
    for a, b, value in samples:
        metrics.set(PAIR, value, a, b)
    expected = {(a, b): value for a, b, value in samples}
    (family,) = text_string_to_metric_families(metrics.render())
    parsed = {(s.labels["a"], s.labels["b"]): s.value for s in family.samples}
    assert parsed == expected
