"""A management-API monitor's module: its base module from config.yml with the monitor's own
settings (timeout, policies, ICMP packets, mail servers) laid over it and validated by the
same config models, so an API field is refused for exactly the reasons a config key is. The
base module's nested settings (TLS, steps, filters) are reused as they are, not dumped and
parsed again."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from ..api.fields import POLICY_NAMES, AssertionIn, RetriesIn, config_form, is_duration, wire_name
from ..config import Config, Module
from ..config.email import EmailModule
from ..config.errors import FIELD_NAMES, error_parts
from ..config.icmp import IcmpModule
from ..config.policies import Assertion, Retries, check_assertion, check_policy
from ..config.tcp import QueryStep, TcpModule
from ..storage import MonitorRecord
from ..storage.secrets import PasswordKey, SecretError

_EMAIL_FIELDS: dict[tuple[str, ...], str] = {
    ("preferred_ip_protocol",): "ipFamily",
    ("smtp", "url"): "smtpUrl",
    ("receive", "url"): "receiveUrl",
    ("smtp", "username"): "username",
    ("receive", "username"): "username",
    ("to",): "email",
    ("from",): "from",
    ("mail_from",): "from",
}
"""Where an error of the monitor's mail block lands among the API's fields (longest prefix
wins); what matches none is the base module's own setting clashing with the monitor: `module`."""

_API_NAMES = {
    "timeout": wire_name("timeout", ms=True),
    **POLICY_NAMES,
    "icmp": "count",
    "icmp.count": "count",
}
"""The API's names of the module fields a monitor sets, for the errors of the module's checks
and for the messages that name another field (errors.spelled)."""
_CONTEXT = {FIELD_NAMES: _API_NAMES}

_Model = TypeVar("_Model", bound=BaseModel)


class OverrideError(Exception):
    """The monitor's settings do not fit its module; `field` is the API field to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def ms(value: int) -> str:
    return f"{value}ms"


def base_module(record: MonitorRecord, config: Config) -> Module | None:
    """The config module the monitor builds on; None for the implicit plain module a monitor
    gets when it names none and the config has no module named like its kind."""
    module = config.modules.get(record.module)
    if module is None:
        if record.module == record.kind:
            return None
        known = ", ".join(n for n, m in config.modules.items() if m.prober == record.kind)
        raise OverrideError("module", f"{record.module!r} is not in config.yml (have: {known})")
    if module.prober != record.kind:
        raise OverrideError("module", f"{record.module!r} is a {module.prober} module")
    return module


def module_for(record: MonitorRecord, config: Config, passwords: PasswordKey) -> Module:
    """The module the monitor's checks run with: its base module with the monitor's settings
    put in place (model_copy) and only those validated, with the checks the config's Module
    validation runs on them (the same functions, so a field is refused for the same reasons).
    An email monitor's sealed password is opened with `passwords`."""
    base = base_module(record, config)
    block = _own_block(record, None if base is None else base.settings, passwords)
    module = base or Module.model_validate({"prober": record.kind, record.kind: block})
    update: dict[str, Any] = {record.kind: block}
    if record.timeout is not None:
        update["timeout"] = record.timeout
    update |= _policies(record.spec)
    fresh = _copy(module, update)
    _check_module(fresh, update)
    if base is None and config.ip_filter is not None:
        return fresh.with_filter(config.ip_filter)  # as Config does for its own modules
    return fresh


@functools.cache
def _default_block(kind: str) -> BaseModel:
    """The block of a module that sets none (email has none: its servers are the monitor's)."""
    return Module.model_validate({"prober": kind}).settings


def _copy(model: _Model, update: dict[str, Any]) -> _Model:
    """`model` with `update` in place. What its class derives from its fields (cached
    properties: has_policies, uses_tls) is derived again; what the base classes keep (a
    block's target filter, built at validation) and the nested models (a TLS context) are shared."""
    copy = model.model_copy(update=update)
    for name in _derived(type(model)):
        copy.__dict__.pop(name, None)
    return copy


@functools.cache
def _derived(cls: type[BaseModel]) -> tuple[str, ...]:
    """The cached properties a model class defines itself (not those of its bases)."""
    return tuple(n for n, v in vars(cls).items() if isinstance(v, functools.cached_property))


def _own_block(record: MonitorRecord, block: BaseModel | None, passwords: PasswordKey) -> BaseModel:
    """The monitor's copy of its base module's block (`block`; None: no base module), with
    its own settings: a copy even when it sets none (with_filter then copies it again with
    the filter it probes under; no model is changed once built)."""
    spec = record.spec
    if record.kind == "email":
        return _email_block({} if block is None else settings_of(block), spec, passwords)
    block = block or _default_block(record.kind)
    update: dict[str, Any] = {}
    if isinstance(block, TcpModule) and spec.get("data") is not None:
        step = _validated("data", QueryStep, {"send": spec["data"]})
        update["query_response"] = (*block.query_response, step)
    elif isinstance(block, IcmpModule):
        update["payload_size"] = spec.get("packetSize", block.payload_size)
        update["count"] = spec.get("count", block.count)
    if "ipFamily" in spec:
        update["preferred_ip_protocol"] = "ip6" if spec["ipFamily"] == "IPv6" else "ip4"
        update["ip_protocol_fallback"] = False
    # A send step has no labels and no starttls: TcpModule's own checks cannot change.
    return _copy(block, update)


_PLAIN = {
    name: is_duration(Module.model_fields[name])
    for name in POLICY_NAMES
    if name in Module.model_fields and name not in ("retries", "assertions")
}
"""The policies a monitor sets as plain values (name -> whether a duration, sent in ms);
retries and assertions are models (read back below), ip_family a setting of the block
(_own_block)."""


def _policies(spec: dict[str, Any]) -> dict[str, Any]:
    """The module fields the monitor's policies set, validated each by its own model."""
    update: dict[str, Any] = {}
    for key, seconds in _PLAIN.items():
        value = spec.get(POLICY_NAMES[key])
        if value is not None:
            update[key] = value / 1000 if seconds else value
    retries = spec.get("retries")
    if retries is not None:
        update["retries"] = _validated("retries", Retries, config_form(RetriesIn, retries))
    if spec.get("assertions") is not None:
        update["assertions"] = tuple(
            _validated(f"assertions[{n}]", Assertion, config_form(AssertionIn, item))
            for n, item in enumerate(spec["assertions"])
        )
    return update


def _check_module(module: Module, update: dict[str, Any]) -> None:
    """Run the checks Module's validation runs on the fields the monitor set, each seeing
    the fields declared before it as pydantic would (ValidationInfo.data)."""
    data: dict[str, Any] = {}
    for name in Module.model_fields:
        value = getattr(module, name)
        if name in update:
            info = _Info(data, name)
            if name in _POLICY_CHECKED:
                _checked(name, check_policy, value, info)
            elif name == "assertions":
                for n, assertion in enumerate(value):
                    _checked(f"assertions[{n}]", check_assertion, assertion, info)
        data[name] = value
    _checked("module", module.check_attempts)


_POLICY_CHECKED = Module.__pydantic_decorators__.field_validators["_policy_fits"].info.fields
"""The fields Module checks with check_policy."""


@dataclass(frozen=True, slots=True)
class _Info:
    """What a field check reads of pydantic's ValidationInfo."""

    data: dict[str, Any]
    field_name: str
    context: dict[str, Any] = field(default_factory=lambda: _CONTEXT)
    config: None = None
    mode: Literal["python"] = "python"


def _checked(field_name: str, check: Callable[..., object], *args: Any) -> None:
    """Run `check`; its refusal becomes OverrideError naming the API field (a field_error
    names the module field at fault, such as icmp for the echo requests that do not fit)."""
    try:
        check(*args)
    except PydanticCustomError as exc:
        blamed = str((exc.context or {}).get("field", ""))
        raise OverrideError(_API_NAMES.get(blamed, field_name), exc.message()) from None
    except ValueError as exc:
        raise OverrideError(_API_NAMES.get(field_name, field_name), str(exc)) from None


def _validated(field_name: str, model: type[_Model], data: dict[str, Any]) -> _Model:
    try:
        return model.model_validate(data, context=_CONTEXT)
    except ValidationError as exc:
        raise OverrideError(field_name, first_error(exc)[1]) from None


def settings_of(model: BaseModel) -> dict[str, Any]:
    """A validated model's fields, to validate again with some of them replaced: nested models
    as they are (pydantic takes them without validating them again, so a TLS config keeps its
    context), plain values in their written form (a duration as "5s"), by alias."""
    data: dict[str, Any] = {}
    plain = set()
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel) or (
            isinstance(value, tuple) and value and isinstance(value[0], BaseModel)
        ):
            data[info.alias or name] = value
        else:
            plain.add(name)
    return {**model.model_dump(mode="json", by_alias=True, include=plain), **data}


def _email_block(
    block: dict[str, Any], spec: dict[str, Any], passwords: PasswordKey
) -> EmailModule:
    """The mail servers and addresses of the monitor, keeping the base module's other settings
    (TLS, poll interval) where they still apply to the monitor's URLs."""
    try:
        password = passwords.open(spec["password"])
    except SecretError as exc:
        raise OverrideError("password", str(exc)) from None
    servers = {}
    for name, url in (("smtp", spec["smtpUrl"]), ("receive", spec["receiveUrl"])):
        own = block.get(name)
        server = {
            k: v
            for k, v in (settings_of(own) if own is not None else {}).items()
            if k not in ("url", "username", "password", "password_file", "password_env")
        }
        if url.partition("://")[0] in ("smtps", "pop3s", "imaps"):
            server.pop("starttls", None)
        if url.startswith("pop3"):
            server.pop("mailbox", None)
        servers[name] = {**server, "url": url, "username": spec["username"], "password": password}
    data = {**block, **servers, "to": spec["email"], "from": spec.get("from") or spec["email"]}
    try:
        return EmailModule.model_validate(data, context=_CONTEXT)
    except ValidationError as exc:
        loc, message = first_error(exc)
        field = _api_field(loc)
        if field == "from" and spec.get("from") is None:  # `from` defaults to `email`
            field = "email"
        raise OverrideError(field, message) from None


def first_error(exc: ValidationError) -> tuple[tuple[str, ...], str]:
    """The first error's location (field_error's own field included) and its message, which
    never repeats the input (a password may be in it)."""
    loc, message = error_parts(exc.errors(include_input=False)[0])
    return tuple(str(p) for p in loc), message.replace("Input should be", "expected")


def _api_field(loc: tuple[str, ...]) -> str:
    for n in range(len(loc), 0, -1):
        field = _EMAIL_FIELDS.get(loc[:n])
        if field is not None:
            return field
    return "module"
