"""The probe policies row (700): retries, degraded state, inverted checks and assertions."""

from __future__ import annotations

from .panels import (
    COLORED_CELLS,
    UP_DOWN,
    Panel,
    prop,
    row,
    series,
    sort_by,
    state_timeline,
    target,
    threshold_steps,
    timeseries,
    value_map,
)
from .queries import PER_ASSERTION, PER_TARGET, PROBE, probed
from .tables import Column, latest_table, outcome_table


def policies_row(y: int) -> list[Panel]:
    """Retries, degraded state, inverted checks and assertions (docs/configuration.md, "Probe policies").
    Each panel shows only the probes of modules that set the policy: the others have none of
    these series."""
    verdicts = value_map(("0", "red", "DOWN"), ("1", "green", "UP"), ("2", "orange", "DEGRADED"))
    held = value_map(("1", "green", "held"), ("0", "red", "failed"))
    # For should_fail modules the raw outcome is good when the checks failed.
    raw = value_map(("1", "red", "checks passed"), ("0", "green", "checks failed"))
    attempts = f"probe_attempts{{{PROBE}}}"
    # 1 for a probe that succeeded only after a retry: what SondeProbeFlapping counts.
    passed_after_retry = f"(({attempts} > bool 1) * probe_success{{{PROBE}}})"
    retry_columns = [
        Column("A", f"{PER_TARGET} ({attempts})", "Attempts (latest)", "none", 0),
        Column(
            "B", f"{PER_TARGET} (max_over_time({attempts}[$__range]))", "Most attempts", "none", 0
        ),
        Column(
            "C",
            f"{PER_TARGET} (sum_over_time({attempts}[$__range]) "
            f"- count_over_time({attempts}[$__range]))",
            "Retries in range",
            "none",
            0,
        ),
        Column(
            "D",
            f"{PER_TARGET} (avg_over_time({passed_after_retry}[$__range:$__interval]))",
            "Passed after retries",
            "percentunit",
            1,
            (prop("thresholds", threshold_steps(("green", None), ("orange", 0.1))), COLORED_CELLS),
        ),
    ]
    assertion_columns = [
        Column(
            "A",
            f"{PER_ASSERTION} (probe_assertion_success{{{PROBE}}})",
            "Latest",
            "none",
            0,
            (prop("mappings", [held]), COLORED_CELLS),
        ),
        Column(
            "B",
            f"{PER_ASSERTION} (avg_over_time(probe_assertion_success{{{PROBE}}}[$__range]))",
            "Held in range",
            "percentunit",
            1,
            (
                prop("thresholds", threshold_steps(("red", None), ("orange", 0.95), ("green", 1))),
                COLORED_CELLS,
            ),
        ),
    ]
    return [
        row(700, "Probe policies", y),
        timeseries(
            701,
            "Attempts per probe",
            [target(probed(attempts), legend="{{target}} ({{module}})")],
            (0, y + 1, 12, 8),
            description="Attempts each probe of a module with retries made: 1 when the first "
            "attempt decided it, more when it was retried. A probe that succeeds with 2 or 3 "
            "is up only thanks to its retries; SondeProbeFlapping fires when that happens in "
            "over 10% of the last 15 minutes.",
            defaults={"min": 0, "decimals": 0},
        ),
        timeseries(
            702,
            "Failed attempts by reason",
            [
                target(
                    f"count by (attempt, reason) (probe_attempt_failure_reason{{{PROBE}}} == 1)",
                    legend="attempt {{attempt}}: {{reason}}",
                )
            ],
            (12, y + 1, 12, 8),
            description="Failed attempts of the latest probes, by attempt number and reason, "
            "whether a later attempt then succeeded or not. retries.on: [network_error] retries "
            "dns, connect_refused, connect_timeout, connect_error, timeout, io_error, "
            "smtp_connect and receive_connect; [any] retries every reason.",
            style="bars",
        ),
        latest_table(
            703,
            "Retries per target",
            retry_columns,
            (0, y + 9, 24, 7),
            description="Which targets needed retries: attempts of the latest probe, the most "
            "over the time range, the retries started over the range, and the share of the "
            "range in which the latest probe had succeeded only after a retry (orange from "
            "10%, SondeProbeFlapping's threshold).",
            options=sort_by("Passed after retries", desc=True),
        ),
        state_timeline(
            704,
            "Degraded",
            [
                target(
                    probed(f"probe_success{{{PROBE}}} * (1 + probe_degraded{{{PROBE}}})"),
                    legend="{{target}} ({{module}})",
                )
            ],
            (0, y + 16, 12, 8),
            description="Probes of modules with degraded_response_time: UP, DEGRADED (succeeded "
            "with a response time over degraded_response_time) or DOWN. SondeProbeDegraded "
            "fires when a probe is degraded in over half of the last 10 minutes.",
            mappings=verdicts,
        ),
        latest_table(
            705,
            "Assertions",
            assertion_columns,
            (12, y + 16, 12, 8),
            description="Each assertion of each probe, by its position in the module (from 0), "
            "source and comparison: whether it held in the latest probe, and in which share of "
            "the time range. A failed assertion fails the probe with assertion_failed; "
            "assertions are evaluated only when the prober succeeded, so a failing probe has "
            "no latest result here.",
            options=sort_by("Held in range"),
        ),
        state_timeline(
            706,
            "Inverted checks: raw outcome and verdict",
            [
                target(probed(f"probe_raw_success{{{PROBE}}}"), legend="{{target}} raw"),
                target(
                    probed(f"probe_success{{{PROBE}}} and probe_raw_success{{{PROBE}}}"),
                    ref="B",
                    legend="{{target}} verdict",
                ),
            ],
            (0, y + 24, 12, 8),
            description="Modules with should_fail: true. Raw is what the checks found (the "
            "prober, max_response_time and the assertions), verdict is probe_success: "
            "checks that failed make the probe UP, checks that passed make it DOWN with "
            "unexpected_success.",
            mappings=UP_DOWN,
            overrides=[series("A", prop("mappings", [raw]))],
        ),
        outcome_table(
            707,
            "Inverted checks per target",
            ("probe_raw_success", "probe_raw_failure_reason"),
            (12, y + 24, 12, 8),
            description="The latest raw outcome of each should_fail probe and, when its "
            "checks failed (which makes the probe succeed), why: the reason the probe would "
            "have failed with without should_fail.",
            name="Checks",
            mappings=raw,
            worst_first=True,
            hide=("job",),
        ),
    ]
