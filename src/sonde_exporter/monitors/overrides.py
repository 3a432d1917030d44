"""A management-API monitor's module: its base module from config.yml with the monitor's own
settings (timeout, policies, ICMP packets, mail servers) laid over it and validated by the
same config models, so an API field is refused for exactly the reasons a config key is. The
base module's nested settings (TLS, steps, filters) are reused as they are, not dumped and
parsed again."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ..config import Config, Module
from ..config.errors import FIELD_NAMES, error_parts
from ..storage import MonitorRecord
from ..storage.secrets import SecretError, open_sealed

POLICY_KEYS = {
    "degradedResponseTimeMs": "degraded_response_time",
    "maxResponseTimeMs": "max_response_time",
    "shouldFail": "should_fail",
    "tracerouteOnError": "traceroute_on_error",
}
"""API policy fields that map one to one onto a module key (milliseconds become durations)."""

_MODULE_FIELDS: dict[tuple[str, ...], str] = {
    ("timeout",): "timeoutMs",
    ("retries",): "retries",
    ("degraded_response_time",): "degradedResponseTimeMs",
    ("max_response_time",): "maxResponseTimeMs",
    ("should_fail",): "shouldFail",
    ("assertions",): "assertions",
    ("traceroute_on_error",): "tracerouteOnError",
    ("tcp", "query_response"): "data",
    ("tcp", "preferred_ip_protocol"): "ipFamily",
    ("icmp", "preferred_ip_protocol"): "ipFamily",
    ("icmp", "payload_size"): "packetSize",
    ("icmp",): "count",
    ("icmp", "count"): "count",
    ("email", "preferred_ip_protocol"): "ipFamily",
    ("email", "smtp", "url"): "smtpUrl",
    ("email", "receive", "url"): "receiveUrl",
    ("email", "smtp", "username"): "username",
    ("email", "receive", "username"): "username",
    ("email", "to"): "email",
    ("email", "from"): "from",
    ("email", "mail_from"): "from",
}
"""Where a module validation error lands among the API's fields (longest prefix wins); what
matches none is the base module's own setting clashing with the monitor: `module`."""

_API_NAMES = {".".join(loc): field for loc, field in _MODULE_FIELDS.items() if len(loc) > 1}
_API_NAMES |= {loc[0]: field for loc, field in _MODULE_FIELDS.items() if len(loc) == 1}
_CONTEXT = {FIELD_NAMES: _API_NAMES}
"""Validation context: a message that names another field names it as the API does."""


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


def module_for(record: MonitorRecord, config: Config) -> Module:
    """Validate and return the module the monitor's checks run with."""
    base = base_module(record, config)
    data: dict[str, Any] = {"prober": record.kind}
    block: dict[str, Any] = {}
    if base is not None:
        data = settings_of(base)
        block = settings_of(base.settings)
    if record.timeout is not None:
        data["timeout"] = ms(round(record.timeout * 1000))
    _lay_policies(data, record.spec)
    if record.kind == "tcp" and record.spec.get("data") is not None:
        block["query_response"] = [*block.get("query_response", ()), {"send": record.spec["data"]}]
    elif record.kind == "icmp":
        block["payload_size"] = record.spec.get("packetSize", block.get("payload_size", 56))
        block["count"] = record.spec.get("count", block.get("count", 3))
    elif record.kind == "email":
        block = _email_block(block, record.spec)
    if "ipFamily" in record.spec:
        block["preferred_ip_protocol"] = "ip6" if record.spec["ipFamily"] == "IPv6" else "ip4"
        block["ip_protocol_fallback"] = False
    data[record.kind] = block
    try:
        module = Module.model_validate(data, context=_CONTEXT)
    except ValidationError as exc:
        loc, message = first_error(exc)
        field = _api_field(loc)
        if field == "from" and record.spec.get("from") is None:  # `from` defaults to `email`
            field = "email"
        raise OverrideError(field, message) from None
    if module.ip_filter is None and config.ip_filter is not None:
        module.use_filter(config.ip_filter)  # as Config does for its own modules
    return module


def settings_of(model: BaseModel) -> dict[str, Any]:
    """A validated model's fields, to validate again with some of them replaced: nested models
    as they are (pydantic takes them without validating them again, so a TLS config keeps its
    context), plain values in their written form (a duration as "5s"), by alias."""
    data: dict[str, Any] = {}
    plain = set()
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel) or (
            isinstance(value, tuple) and value and isinstance(value[0], BaseModel)
        ):
            data[field.alias or name] = value
        else:
            plain.add(name)
    return {**model.model_dump(mode="json", by_alias=True, include=plain), **data}


def _lay_policies(data: dict[str, Any], spec: dict[str, Any]) -> None:
    for api_key, key in POLICY_KEYS.items():
        value = spec.get(api_key)
        if value is not None:
            data[key] = ms(value) if api_key.endswith("Ms") else value
    retries = spec.get("retries")
    if retries is not None:
        data["retries"] = {
            "max": retries["max"],
            "backoff": retries["backoff"],
            "delay": ms(retries["delayMs"]),
            "on": [retries["on"]],
        }
    if spec.get("assertions") is not None:
        data["assertions"] = spec["assertions"]


def _email_block(block: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The mail servers and addresses of the monitor, keeping the base module's other settings
    (TLS, poll interval) where they still apply to the monitor's URLs."""
    try:
        password = open_sealed(spec["password"])
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
    return {**block, **servers, "to": spec["email"], "from": spec.get("from") or spec["email"]}


def first_error(exc: ValidationError) -> tuple[tuple[str, ...], str]:
    """The first error's location (field_error's own field included) and its message, which
    never repeats the input (a password may be in it)."""
    loc, message = error_parts(exc.errors(include_input=False)[0])
    return tuple(str(p) for p in loc), message.replace("Input should be", "expected")


def _api_field(loc: tuple[str, ...]) -> str:
    for n in range(len(loc), 0, -1):
        field = _MODULE_FIELDS.get(loc[:n])
        if field is not None:
            if field == "assertions" and loc[n:] and loc[n].isdigit():
                return f"assertions[{loc[n]}]"
            return field
    return "module"
