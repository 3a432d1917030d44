"""The modules: which prober each one runs, its timeout, and that prober's settings block."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ..ipfilter import DEFAULT_FILTER, TargetFilter
from ..kinds import KINDS, KindName
from ..prober_base import TargetError
from ..probers import accept_target
from .address import AddressChoice
from .email import EmailModule
from .errors import field_error
from .fields import Duration, Strict
from .icmp import IcmpModule
from .ip_filter import IpFilter, PortRule
from .monitors import MonitorConfig, check_timeout_fits
from .policies import (
    CheckedAssertion,
    Retries,
    attempt_share,
    attempts_fit,
    check_policy,
)
from .tcp import TcpModule
from .traceroute import DEFAULT_TRACEROUTE, TracerouteSettings

ProberName = KindName
"""Every prober name (kinds.py)."""

ForeignProberName = Literal["http", "dns", "grpc", "unix", "websocket"]
"""blackbox_exporter's probers that sonde-exporter does not have. Their modules load, so that
both exporters can read one file, but probing them is a 400; any other name is an error."""

_PROBER_BLOCKS: tuple[str, ...] = get_args(ProberName)
_FOREIGN_BLOCKS: tuple[str, ...] = get_args(ForeignProberName)

ForeignBlock = Annotated[dict[str, Any] | None, Field(exclude=True)]
"""A foreign prober's block: blackbox_exporter's to check, so its keys are taken unread.
Never written out: /config and debug output must not show what may hold its passwords."""


class Module(Strict):
    """One entry under `modules:`: which prober, its timeout, that prober's block, and the
    probe policies (policies.py)."""

    prober: Literal[ProberName, ForeignProberName]
    timeout: Duration = 0.0
    tcp: TcpModule | None = None
    icmp: IcmpModule | None = None
    email: EmailModule | None = None
    http: ForeignBlock = None
    dns: ForeignBlock = None
    grpc: ForeignBlock = None
    unix: ForeignBlock = None
    websocket: ForeignBlock = None
    # Probe policies (policies.py); declared after the blocks, which their checks read.
    retries: Retries | None = None
    degraded_response_time: Duration | None = None
    max_response_time: Duration | None = None
    should_fail: bool = False
    assertions: tuple[CheckedAssertion, ...] = ()
    traceroute_on_error: bool = False
    traceroute: TracerouteSettings | None = None
    """Settings of traceroute_on_error; None means the defaults."""
    ip_filter: IpFilter | None = None
    """Replaces the top-level ip_filter for this module (ip_filter.py)."""
    allowed_ports: tuple[PortRule, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_own_block(cls, data: Any) -> Any:
        """A module without its prober's block gets that block's defaults."""
        if isinstance(data, dict) and data.get("prober") in _PROBER_BLOCKS:
            own = data["prober"]
            if data.get(own) is None:
                data = {**data, own: {}}
        return data

    @field_validator(*_PROBER_BLOCKS, *_FOREIGN_BLOCKS)
    @classmethod
    def _only_own_block(cls, value: Any, info: ValidationInfo) -> Any:
        prober = info.data.get("prober")
        block = info.field_name or ""
        if value is not None and prober is not None and prober != block:
            raise ValueError(
                f"a module with prober {prober!r} cannot have {_article(block)} {block!r} block"
            )
        return value

    @field_validator("retries", "degraded_response_time", "max_response_time", "should_fail")
    @classmethod
    def _policy_fits(cls, value: Any, info: ValidationInfo) -> Any:
        check_policy(value, info)
        return value

    @cached_property
    def has_policies(self) -> bool:
        """False for a plain module, which runs its prober once exactly as without policies."""
        return bool(
            self.retries is not None
            or self.degraded_response_time is not None
            or self.max_response_time is not None
            or self.should_fail
            or self.assertions
            or self.traceroute_on_error
        )

    @cached_property
    def reads_response_data(self) -> bool:
        """Whether an assertion needs what the TCP dialogue read (kept only then)."""
        return any(a.source == "response_data" for a in self.assertions)

    @property
    def traceroute_settings(self) -> TracerouteSettings:
        return self.traceroute or DEFAULT_TRACEROUTE

    def traceroute_reserve(self, left: float) -> float:
        """Time kept free for the sweep at the end of a deadline `left` seconds away: its
        budget, but never more than half (the attempts keep the rest)."""
        if not self.traceroute_on_error:
            return 0.0
        return min(self.traceroute_settings.budget, left / 2)

    @model_validator(mode="after")
    def _attempts_fit_timeout(self) -> Module:
        self.check_attempts()
        return self

    def check_attempts(self) -> None:
        """What the probing engine will give each attempt, checked here with the same rules:
        the timeout less the traceroute's reserve, less the backoff delays, shared by the
        attempts; an ICMP attempt must fit its echo requests and the prober's grace. Also
        run on an API monitor's copy of its module (monitors/overrides.py)."""
        if self.traceroute is not None and not self.traceroute_on_error:
            raise field_error("traceroute", "has no effect without traceroute_on_error: true")
        if self.timeout <= 0:
            return
        window = self.timeout - self.traceroute_reserve(self.timeout)
        waits = self.retries.delays if self.retries else []
        attempts, delays = 1 + len(waits), sum(waits)
        if self.traceroute_on_error and not attempts_fit(waits, window):
            raise field_error(
                "traceroute_on_error",
                f"the traceroute's reserve leaves {window:.3g}s of the {self.timeout:g}s timeout, "
                f"too little for {attempts} attempts and {delays:g}s of retry delays",
            )
        share = attempt_share(window, waits)
        if self.icmp is not None and not self.icmp.fits(share):
            per = f"each of the {attempts} attempts gets" if attempts > 1 else "the probe gets"
            raise field_error(
                "icmp",
                f"sending {self.icmp.count} echo requests {self.icmp.interval:g}s apart takes "
                f"{self.icmp.send_span:g}s, and {per} {share:.3g}s of the {self.timeout:g}s "
                f"timeout, which leaves no time for the last reply",
            )

    @model_validator(mode="wrap")
    @classmethod
    def _own_filter(cls, data: Any, handler: ModelWrapValidatorHandler[Module]) -> Module:
        """The module with its own filter in its block, in force unless Config applies the
        top-level one."""
        module = handler(data)
        if module.allowed_ports is not None and not (
            module.supported and KINDS[module.prober].has_ports
        ):
            with_ports = " and ".join(n for n, spec in KINDS.items() if spec.has_ports)
            raise field_error(
                "allowed_ports", f"applies to {with_ports} modules; {module.prober} has no ports"
            )
        if module.allowed_ports == ():
            raise field_error("allowed_ports", "must list at least one port or range")
        return module.with_filter(module.ip_filter)

    def with_filter(self, rules: IpFilter | None) -> Module:
        """This module with the filter its prober applies built from `rules` (None: allow all
        but the cloud metadata addresses) and its allowed_ports: a copy whose block carries it
        (the module itself never changes); itself when its prober picks no address."""
        block = getattr(self, self.prober) if self.supported else None
        if not isinstance(block, AddressChoice):
            return self
        ports = self.allowed_ports or ()
        if rules is not None:
            target_filter = rules.target_filter(ports)
        elif ports:
            target_filter = TargetFilter.build(ports=ports)
        else:
            target_filter = DEFAULT_FILTER
        return self.model_copy(update={self.prober: block.with_filter(target_filter)})

    @property
    def target_filter(self) -> TargetFilter:
        """What its probes may reach (for the management API's checks of a monitor's target)."""
        block = getattr(self, self.prober) if self.supported else None
        return block.target_filter if isinstance(block, AddressChoice) else DEFAULT_FILTER

    @model_serializer(mode="wrap")
    def _without_other_blocks(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Written out (/config, debug output) as it could be loaded: its own block only, and
        only the policies it sets."""
        data: dict[str, Any] = handler(self)
        return {
            k: v
            for k, v in data.items()
            if not (k in _PROBER_BLOCKS and v is None)
            and not (k in _POLICIES and not v)
            and not (k in _FILTER_KEYS and v is None)
        }

    @property
    def supported(self) -> bool:
        """Whether sonde-exporter has this module's prober (it may be a foreign one)."""
        return self.prober in _PROBER_BLOCKS

    @property
    def settings(self) -> BaseModel:
        """The block of this module's own prober (`tcp:` for prober tcp, and so on)."""
        block: BaseModel = getattr(self, self.prober)
        return block


_POLICIES = (
    "retries",
    "degraded_response_time",
    "max_response_time",
    "should_fail",
    "assertions",
    "traceroute_on_error",
    "traceroute",
)
"""Module keys left out of the written config while unset (None, False or no assertions)."""
_FILTER_KEYS = ("ip_filter", "allowed_ports")


def _article(name: str) -> str:
    """The article before a block name: "an" for a vowel sound (icmp, email, and http, read
    letter by letter), "a" otherwise (tcp, dns, unix)."""
    return "an" if name[0] in "aeioh" else "a"


class Config(Strict):
    ip_filter: IpFilter | None = None
    """The filter of every module that has no ip_filter of its own."""
    modules: dict[Annotated[str, Field(min_length=1)], Module]
    monitors: tuple[MonitorConfig, ...] = ()

    @model_validator(mode="after")
    def _monitors_fit_modules(self) -> Config:
        names: set[str] = set()
        for index, monitor in enumerate(self.monitors):
            if monitor.name in names:
                raise field_error(f"monitors.{index}.name", f"{monitor.name!r} is used twice")
            names.add(monitor.name)
            module = self.modules.get(monitor.module)
            if module is None or not module.supported:
                known = ", ".join(n for n, m in self.modules.items() if m.supported)
                why = "is not a module above" if module is None else "uses a foreign prober"
                raise field_error(
                    f"monitors.{index}.module", f"{monitor.module!r} {why} (have: {known})"
                )
            try:
                accept_target(module.prober, monitor.target)
            except TargetError as exc:
                raise field_error(f"monitors.{index}.target", str(exc)) from None
            try:
                if monitor.timeout is not None:
                    check_timeout_fits(monitor.timeout, monitor.interval)
            except ValueError as exc:
                raise field_error(f"monitors.{index}.timeout", str(exc)) from None
        return self

    @field_validator("modules")
    @classmethod
    def _top_level_filter(
        cls, modules: dict[str, Module], info: ValidationInfo
    ) -> dict[str, Module]:
        """The modules with no ip_filter of their own take the top-level one (declared
        before `modules`, so validated first): copies, the validated modules stay as they are."""
        rules: IpFilter | None = info.data.get("ip_filter")
        if rules is None:
            return modules
        return {
            n: m if m.ip_filter is not None else m.with_filter(rules) for n, m in modules.items()
        }

    @model_serializer(mode="wrap")
    def _without_unset_filter(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("ip_filter") is None:
            data.pop("ip_filter", None)
        return data

    @property
    def unsupported(self) -> dict[str, str]:
        """Module name -> prober, for the modules whose prober sonde-exporter does not have."""
        return {name: m.prober for name, m in self.modules.items() if not m.supported}


DEFAULT_MONITOR_TIMEOUT = 10.0
"""A monitor's timeout when neither it nor its module sets one: Prometheus' scrape timeout."""
