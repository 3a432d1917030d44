"""Probe policies: retries, degraded and maximum response time, should_fail, assertions.

They are module settings next to `prober:` and `timeout:`. Everything that can be wrong with
them is refused here, at load, so the probing engine (probing/) never meets a bad policy: an
assertion's target is parsed into the form its comparison needs and a `matches` regex is
compiled once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..kinds import KINDS
from .errors import error_parts, spelled
from .fields import Duration, Regex, Strict, duration_between, latin1

MIN_ATTEMPT_SECONDS = 0.1
"""An attempt is started only with at least this much of the deadline left after its backoff:
less would leave it no real chance beyond the local network."""

MAX_RETRIES = 10
MAX_DELAY_SECONDS = 60.0

Backoff = Literal["fixed", "linear", "exponential"]
RetryOn = Literal["network_error", "any"]
Source = Literal[
    "response_data",
    "response_time",
    "packet_loss",
    "rtt_avg",
    "rtt_max",
    "jitter",
    "delivery_time",
]
Comparison = Literal[
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "is_empty",
    "not_empty",
    "less_than",
    "greater_than",
    "matches",
]

SOURCES: dict[str, tuple[str, ...]] = {name: spec.sources for name, spec in KINDS.items()}
"""The sources each prober measures (kinds.py; probers record them with ctx.observe)."""

_DATA_COMPARISONS = frozenset(
    {"equals", "not_equals", "contains", "not_contains", "is_empty", "not_empty", "matches"}
)
_RATIO_COMPARISONS = frozenset({"equals", "not_equals", "less_than", "greater_than"})
_DURATION_COMPARISONS = frozenset({"less_than", "greater_than"})
_NO_TARGET = frozenset({"is_empty", "not_empty"})

_duration = TypeAdapter(Duration)
_regex = TypeAdapter(Regex)


def _first_error(exc: ValidationError) -> str:
    return error_parts(exc.errors(include_input=False)[0])[1]


class Retries(Strict):
    """`retries:` how often to try again after a failed attempt, and how long to wait first."""

    max: int = Field(default=2, ge=0, le=MAX_RETRIES)
    backoff: Backoff = "fixed"
    delay: Annotated[Duration, duration_between(0, MAX_DELAY_SECONDS, "0s to 1m")] = 0.1
    on: tuple[RetryOn, ...] = ("network_error",)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        """YAML 1.1 reads an unquoted `on:` key as the boolean true; here it can only mean on."""
        if isinstance(data, dict) and True in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @field_validator("on")
    @classmethod
    def _one_kind(cls, value: tuple[RetryOn, ...]) -> tuple[RetryOn, ...]:
        if len(set(value)) != 1:
            raise ValueError("expected [network_error] or [any]")
        return value[:1]

    @property
    def on_any(self) -> bool:
        return self.on == ("any",)

    def delay_before(self, retry: int) -> float:
        """The wait before retry number `retry` (1 for the second attempt)."""
        if self.backoff == "linear":
            return self.delay * retry
        if self.backoff == "exponential":
            return self.delay * 2.0 ** (retry - 1)
        return self.delay

    @property
    def delays(self) -> list[float]:
        """The wait before each retry."""
        return [self.delay_before(retry) for retry in range(1, self.max + 1)]

    @property
    def total_delay(self) -> float:
        return sum(self.delays)


def attempts_fit(delays: list[float], left: float) -> bool:
    """Whether an attempt and a retry after each of `delays` can each get MIN_ATTEMPT_SECONDS
    within `left` seconds: the rule config validation and the probing engine share."""
    return sum(delays) + (len(delays) + 1) * MIN_ATTEMPT_SECONDS <= left


def attempt_share(left: float, delays: list[float]) -> float:
    """What each of those attempts gets of `left` seconds, the delays set aside."""
    return (left - sum(delays)) / (len(delays) + 1)


class Assertion(Strict):
    """One check on what the prober observed: `source` `comparison` `target`."""

    source: Source
    comparison: Comparison
    target: str | float | None = None
    _text: bytes = PrivateAttr(default=b"")
    _pattern: Regex | None = PrivateAttr(default=None)
    _number: float = PrivateAttr(default=0.0)

    @field_validator("target", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a string, a duration or a number, not true/false")
        return value

    @model_validator(mode="after")
    def _parse_target(self) -> Assertion:
        if self.comparison in _NO_TARGET:
            if self.target is not None:
                raise ValueError(f"{self.comparison} takes no target")
        elif self.target is None:
            raise ValueError(f"{self.comparison} needs a target")
        if self.source == "response_data":
            self._data_target()
        elif self.source == "packet_loss":
            self._number = self._ratio_target()
        else:
            self._number = self._duration_target()
        return self

    def _data_target(self) -> None:
        if self.comparison not in _DATA_COMPARISONS:
            raise ValueError(
                f"{self.comparison} does not apply to response_data (bytes); use equals, "
                "not_equals, contains, not_contains, is_empty, not_empty or matches"
            )
        if self.target is None:
            return
        if not isinstance(self.target, str):
            raise ValueError("a response_data target must be a string; quote it")
        if self.comparison == "matches":
            try:
                self._pattern = _regex.validate_python(self.target)
            except ValidationError as exc:
                raise ValueError(_first_error(exc)) from None
        else:
            self._text = latin1(self.target)

    def _ratio_target(self) -> float:
        if self.comparison not in _RATIO_COMPARISONS:
            raise ValueError(
                f"{self.comparison} does not apply to packet_loss (a ratio); use less_than, "
                "greater_than, equals or not_equals"
            )
        target = self.target
        if not isinstance(target, float | int):
            raise ValueError(
                f"packet_loss is a ratio from 0 to 1, not a duration or text: write 0.1 for "
                f"10 %, not {target!r}"
            )
        if not 0 <= target <= 1:
            raise ValueError(f"packet_loss is a ratio from 0 to 1; {target:g} is outside it")
        return float(target)

    def _duration_target(self) -> float:
        if self.comparison not in _DURATION_COMPARISONS:
            raise ValueError(
                f"{self.comparison} does not apply to {self.source} (a duration); use less_than "
                "or greater_than"
            )
        if not isinstance(self.target, str):
            raise ValueError(f"{self.source} is a duration: write the target as 500ms or 2s")
        try:
            return float(_duration.validate_python(self.target))
        except ValidationError as exc:
            raise ValueError(_first_error(exc)) from None

    @property
    def text(self) -> bytes:
        """A response_data target as bytes (YAML escapes such as \\x00 are bytes)."""
        return self._text

    @property
    def pattern(self) -> Regex | None:
        """The compiled regex of a `matches` assertion."""
        return self._pattern

    @property
    def number(self) -> float:
        """A duration target in seconds, or a packet_loss ratio."""
        return self._number


def check_assertion(assertion: Assertion, info: ValidationInfo) -> Assertion:
    """Refuse a source the module's prober does not measure, or a target it cannot reach."""
    prober, timeout = info.data.get("prober"), info.data.get("timeout", 0.0)
    if prober is None:  # the prober field itself was invalid; that error is enough
        return assertion
    source = assertion.source
    if source not in SOURCES[prober]:
        raise ValueError(
            f"source {source} is not measured by the {prober} prober "
            f"(it has {', '.join(SOURCES[prober])})"
        )
    icmp = info.data.get("icmp")
    if source == "jitter" and icmp is not None and icmp.count < 2:
        raise ValueError(
            f"jitter needs two replies, so {spelled(info, 'icmp.count')} must be at least 2"
        )
    if source not in ("response_data", "packet_loss") and 0 < timeout <= assertion.number:
        raise ValueError(
            f"target {assertion.target} is not below the {timeout:g}s timeout: the probe "
            "times out before it could be reached"
        )
    return assertion


CheckedAssertion = Annotated[Assertion, AfterValidator(check_assertion)]
"""An assertion checked against the module it is in (fields declared before `assertions`)."""


def check_policy(value: Any, info: ValidationInfo) -> None:
    """Module-level checks of one policy field against the fields declared before it; the
    other fields are named as the reader knows them (errors.spelled)."""
    name, data = info.field_name, info.data
    timeout: float = data.get("timeout", 0.0)
    if value is None or value is False:
        return
    if name == "retries":
        _check_retries(value, timeout)
    elif name in ("degraded_response_time", "max_response_time"):
        if value <= 0:
            raise ValueError("must be more than 0s")
        if 0 < timeout <= value:
            raise ValueError(
                f"{value:g}s is not below the {timeout:g}s timeout: the probe would time out first"
            )
        degraded = data.get("degraded_response_time")
        if name == "max_response_time" and degraded is not None and degraded > value:
            other = spelled(info, "degraded_response_time")
            raise ValueError(f"{value:g}s is below {other} ({degraded:g}s)")
    elif name == "should_fail" and data.get("degraded_response_time") is not None:
        raise ValueError(
            f"{spelled(info, 'should_fail')} cannot be used with "
            f"{spelled(info, 'degraded_response_time')}: a probe that must fail "
            "has no passing response time to call degraded"
        )


def _check_retries(retries: Retries, timeout: float) -> None:
    """Every retry must be able to start within the module timeout."""
    if timeout <= 0:
        return
    attempts = retries.max + 1
    needed = retries.total_delay + attempts * MIN_ATTEMPT_SECONDS
    if not attempts_fit(retries.delays, timeout):
        raise ValueError(
            f"{attempts} attempts with {retries.backoff} backoff from {retries.delay:g}s need "
            f"{needed:g}s ({retries.total_delay:g}s of delays and {MIN_ATTEMPT_SECONDS:g}s per "
            f"attempt), which does not fit the {timeout:g}s timeout"
        )
