"""Request fields every monitor kind shares: the contract's, and the optional ones of the other
products (status, module, policies), in camelCase. Strict: "5000" is not a number, 1 is not
true, and an unknown field is an error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from ..config.fields import Duration, PlainName, header_safe
from ..config.modules import Module
from ..config.monitors import STATUS_ALIASES, MonitorStatus, StatusAlias
from ..config.policies import (
    MAX_DELAY_SECONDS,
    Assertion,
    Retries,
    RetryOn,
)

MAX_BODY = 64 * 1024
"""Largest request body accepted (a monitor is well under 4 KiB)."""

Status = Literal[MonitorStatus, StatusAlias]

Printable = AfterValidator(header_safe)
Name = Annotated[PlainName, Field(min_length=1, max_length=255)]
TimeoutMs = Annotated[int, Field(ge=100, le=60_000)]
IntervalSeconds = Annotated[int, Field(ge=10, le=86_400)]
PolicyMs = Annotated[int, Field(ge=1, le=60_000)]
Tag = Annotated[PlainName, Field(min_length=1, max_length=64)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _ApiView(ApiModel):
    """A config model's fields as the API names them (not by their config names as well:
    the API refuses what it does not name)."""

    model_config = ConfigDict(alias_generator=to_camel)


class Wire:
    """How the API writes a config field that it does not take as the config does: `ms`, a
    duration as whole milliseconds under the name + "Ms"; `one`, a list of one as its item."""

    MS = "ms"
    ONE = "one"


_DURATION = get_args(Duration)[1]
"""The mark of a config Duration (its parser), found in a field's metadata or its Optional."""


def is_duration(info: FieldInfo) -> bool:
    return _DURATION in info.metadata or any(
        _DURATION in getattr(arg, "__metadata__", ()) for arg in get_args(info.annotation)
    )


def wire_name(name: str, ms: bool) -> str:
    """The API's name of a config field: camelCase, + "Ms" for a duration in milliseconds."""
    return to_camel(name) + ("Ms" if ms else "")


def config_form(view: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """What the API sent for a view (`data`, as stored) as the config model takes it: by the
    config's names, a duration as "100ms", a list for a single item."""
    out: dict[str, Any] = {}
    for name, info in view.model_fields.items():
        value = data.get(info.alias or name)
        if value is None:
            continue
        if Wire.MS in info.metadata:
            value = f"{value}ms"
        elif Wire.ONE in info.metadata:
            value = [value]
        out[name] = value
    return out


def api_view(model: type[BaseModel], title: str, doc: str, **wire: Any) -> type[ApiModel]:
    """The API's form of a config model (a policy): its fields under camelCase names, each
    with the config's type, default and bounds, but for `wire`: name -> (type, default) as
    the API takes it, Annotated with Wire.MS or Wire.ONE when the value is converted
    (monitors/overrides.py reads the view back into the config model)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in wire:
            fields[name] = (info.annotation, info)
            continue
        annotation, default = wire[name]
        ms = Wire.MS in getattr(annotation, "__metadata__", ())
        alias = wire_name(name, ms) if ms else None
        fields[name] = (
            annotation,
            Field(default=default, alias=alias, title=alias and alias.title()),
        )
    view: type[ApiModel] = create_model(
        title,
        __base__=_ApiView,
        __doc__=doc,
        **fields,
    )
    return view


Milliseconds = Annotated[int, Wire.MS]

if TYPE_CHECKING:  # classes made at run time: to mypy, API models
    RetriesIn: TypeAlias = ApiModel
    AssertionIn: TypeAlias = ApiModel
else:
    RetriesIn = api_view(
        Retries,
        "RetriesIn",
        'Retries of a failed attempt within the check\'s timeout (docs/configuration.md, "Probe policies").',
        delay=(
            Annotated[Milliseconds, Field(ge=0, le=round(MAX_DELAY_SECONDS * 1000))],
            round(Retries.model_fields["delay"].default * 1000),
        ),
        on=(Annotated[RetryOn, Wire.ONE], Retries.model_fields["on"].default[0]),
    )
    AssertionIn = api_view(
        Assertion,
        "AssertionIn",
        '`source` `comparison` `target`, as a module\'s assertions (durations as "500ms").',
        target=(str | int | float | None, None),
    )


class _Contract(ApiModel):
    """The contract's fields (its names, defaults and ranges: the API's own)."""

    name: Name
    timeoutMs: TimeoutMs = 5000
    intervalSeconds: IntervalSeconds = 60
    isEnabled: bool | None = None
    status: Status | None = None
    module: Name | None = None


def module_view(base: type[ApiModel], names: tuple[str, ...], **wire: Any) -> type[ApiModel]:
    """`base` with the config Module's fields `names` as the API takes them: each optional
    (null: as the base module sets it), under wire_name, a duration as Wire.MS, of the
    config's type but for `wire`: name -> the API's type (its own limits, its view of a
    nested model). A name Module does not have is the API's own field, typed in `wire`."""
    fields: dict[str, Any] = {}
    for name in names:
        info = Module.model_fields.get(name)
        ms = info is not None and is_duration(info)
        annotation: Any = wire[name] if name in wire or info is None else info.annotation
        optional = annotation | None
        alias = wire_name(name, ms)
        fields[name] = (
            Annotated[optional, Wire.MS] if ms else optional,
            Field(default=None, alias=alias),
        )
    view: type[ApiModel] = create_model(f"{base.__name__}Policies", __base__=base, **fields)
    return view


if TYPE_CHECKING:  # fields made at run time: to mypy, the contract's
    _WithPolicies = _Contract
else:
    _WithPolicies = module_view(
        _Contract,
        (
            "retries",
            "degraded_response_time",
            "max_response_time",
            "should_fail",
            "assertions",
            "ip_family",
            "traceroute_on_error",
        ),
        retries=RetriesIn,
        degraded_response_time=PolicyMs,
        max_response_time=PolicyMs,
        assertions=Annotated[list[AssertionIn], Field(max_length=20)],
        ip_family=Literal["IPv4", "IPv6"],  # the block's preferred_ip_protocol, ip4 or ip6
    )

POLICY_NAMES: dict[str, str] = {
    name: info.alias or name
    for name, info in _WithPolicies.model_fields.items()
    if name not in _Contract.model_fields
}
"""The module fields a monitor may set (config name -> API name); ip_family is the API's own."""


class MonitorIn(_WithPolicies):
    """What a create or update body may hold for every kind; each kind adds its own fields.
    The contract's fields first, then the optional ones (null: not set)."""

    tags: Annotated[list[Tag], Field(max_length=32)] | None = None

    def spec(self, kind_fields: tuple[str, ...]) -> dict[str, Any]:
        """What the record's spec keeps: the kind's own fields and the optional ones set."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        keep = (*kind_fields, *OPTIONAL_FIELDS)
        return {key: data[key] for key in keep if key in data}


OPTIONAL_FIELDS = (*POLICY_NAMES.values(), "tags")
"""Fields beyond the contract kept in the spec and returned (null while not set; tags [])."""


def resolve_status(status: str | None, enabled: bool | None, current: str | None) -> str:
    """The stored status from `status` and `isEnabled` (either, both or neither sent), which
    may not contradict each other; `current` is the stored one on an update."""
    stored = STATUS_ALIASES.get(status, status) if status is not None else None
    if stored is not None and enabled is not None and (stored != "disabled") != enabled:
        raise ValueError(
            f"isEnabled {str(enabled).lower()} contradicts status {status!r} "
            "(isEnabled is false exactly when the status is disabled)"
        )
    if stored is not None:
        return stored
    if enabled is None:
        return current or "active"
    if not enabled:
        return "disabled"
    return current if current not in (None, "disabled") else "active"
