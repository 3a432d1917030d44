"""An API monitor's module is its base module with the monitor's settings put in place
(monitors/overrides.py): the base's nested settings are shared, never rebuilt, and the base
is never changed by a monitor built on it."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from pydantic import ValidationError

from sonde_exporter.api.fields import (
    POLICY_NAMES,
    AssertionIn,
    MonitorIn,
    RetriesIn,
    config_form,
    wire_name,
)
from sonde_exporter.api.models import TcpMonitorIn
from sonde_exporter.config.loader import parse_config
from sonde_exporter.config.policies import Assertion, Retries
from sonde_exporter.config.tcp import TcpModule
from sonde_exporter.ipfilter.guard import TargetForbidden
from sonde_exporter.monitors.overrides import OverrideError, module_for
from sonde_exporter.monitors.plan import Planner
from sonde_exporter.storage import MonitorRecord
from sonde_exporter.storage.secrets import PasswordKey

CONFIG_TEXT = """
ip_filter: {denied: [10.0.0.0/8]}
modules:
  tls:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
      tls_config: {insecure_skip_verify: true}
      query_response: [{expect: "^220"}]
  icmp: {prober: icmp, timeout: 2s}
"""
CONFIG = parse_config(CONFIG_TEXT, "config.yml")
NO_KEY = PasswordKey(None)
"""No email monitor here: no sealed password to open."""


def record(kind: str, module: str, **spec: Any) -> MonitorRecord:
    target = f"127.0.0.1:{spec['port']}" if "port" in spec else "127.0.0.1"
    return MonitorRecord(
        id="m1",
        kind=kind,
        source="api",
        name="n",
        module=module,
        target=target,
        interval=60.0,
        timeout=4.0,
        status="active",
        created_at=0.0,
        updated_at=0.0,
        spec={"host": "127.0.0.1", **spec},
    )


def test_the_base_modules_nested_settings_are_shared_and_the_base_kept() -> None:
    base = CONFIG.modules["tls"]
    assert isinstance(base.settings, TcpModule)
    before = base.model_dump(mode="json")
    module = module_for(
        record(
            "tcp",
            "tls",
            port=1,
            data="QUIT",
            ipFamily="IPv6",
            retries={"max": 1, "backoff": "linear", "delayMs": 50, "on": "any"},
            degradedResponseTimeMs=800,
        ),
        CONFIG,
        NO_KEY,
    )
    block = module.settings
    assert isinstance(block, TcpModule)
    assert block.tls_config is base.settings.tls_config  # its TLS context too: not rebuilt
    assert block.query_response[0] is base.settings.query_response[0]
    assert [s.send for s in block.query_response] == [None, "QUIT"]
    assert (block.preferred_ip_protocol, block.ip_protocol_fallback) == ("ip6", False)
    assert module.timeout == 4.0 and module.degraded_response_time == 0.8
    assert module.retries is not None and module.retries.delays == [0.05]
    assert module.has_policies and not base.has_policies  # derived again, not copied
    assert block.uses_tls and block.target_filter is base.settings.target_filter
    assert base.model_dump(mode="json") == before  # the base is untouched


def test_the_copy_is_checked_as_a_config_module_is_naming_the_api_fields() -> None:
    with pytest.raises(OverrideError) as caught:
        module_for(
            record("tcp", "tls", port=1, degradedResponseTimeMs=900, shouldFail=True),
            CONFIG,
            NO_KEY,
        )
    assert caught.value.field == "shouldFail"
    assert "cannot be used with degradedResponseTimeMs" in caught.value.message
    with pytest.raises(OverrideError) as caught:
        module_for(record("icmp", "icmp", packetSize=56, count=100), CONFIG, NO_KEY)
    assert caught.value.field == "count"  # Module's own timing check, on the copy
    jitter = [{"source": "jitter", "comparison": "less_than", "target": "1s"}]
    with pytest.raises(OverrideError) as caught:
        module_for(
            record("icmp", "icmp", packetSize=56, count=1, assertions=jitter), CONFIG, NO_KEY
        )
    assert (caught.value.field, caught.value.message) == (
        "assertions[0]",
        "jitter needs two replies, so count must be at least 2",
    )


def test_an_implicit_module_takes_the_top_level_filter() -> None:
    module = module_for(record("tcp", "tcp", port=1), CONFIG, NO_KEY)
    assert module.settings is not CONFIG.modules["tls"].settings
    module.target_filter.check_address("127.0.0.1")
    with pytest.raises(TargetForbidden, match="denied"):
        module.target_filter.check_address("10.1.2.3")


def test_the_apis_policy_objects_are_views_of_the_config_models() -> None:
    """Every config field of a policy is the API's, under its camelCase name; the config's
    own spelling is refused (the API names only what it documents)."""
    assert list(RetriesIn.model_fields) == list(Retries.model_fields)
    assert list(AssertionIn.model_fields) == list(Assertion.model_fields)
    sent = {"max": 3, "backoff": "exponential", "delayMs": 250, "on": "any"}
    assert config_form(RetriesIn, RetriesIn.model_validate(sent).model_dump(by_alias=True)) == {
        "max": 3,
        "backoff": "exponential",
        "delay": "250ms",
        "on": ["any"],
    }
    with pytest.raises(ValidationError, match="delay"):
        RetriesIn.model_validate({"delay": 100})
    with pytest.raises(ValidationError, match="delayMs"):
        RetriesIn.model_validate({"delayMs": "100"})  # strict, as the rest of the API


def test_each_planner_keeps_the_modules_of_the_config_in_force_only() -> None:
    """API modules are cached on the engine's Planner, not in the process: monitors with the
    same settings share a module, another planner builds its own, and a reloaded config
    drops the old config's modules (nothing keeps the old config alive)."""
    config = parse_config(CONFIG_TEXT, "config.yml")
    planner, other = Planner(NO_KEY), Planner(NO_KEY)
    module = planner.api_module(record("tcp", "tls", port=1), config)
    assert planner.api_module(record("tcp", "tls", port=1), config) is module
    assert other.api_module(record("tcp", "tls", port=1), config) is not module
    old = weakref.ref(config)
    reloaded = parse_config(CONFIG_TEXT, "config.yml")
    assert planner.api_module(record("tcp", "tls", port=1), reloaded) is not module
    del config, module
    other.api_module(record("tcp", "tls", port=1), reloaded)
    gc.collect()
    assert old() is None


def test_the_apis_module_policies_are_named_and_read_back_from_config_module() -> None:
    """The module-level policy fields are config.Module's under camelCase (+ "Ms" for a
    duration, in whole milliseconds); every one the monitor sets lands on its module as the
    config's value, and the config's own spelling is refused."""
    assert POLICY_NAMES == {
        "retries": "retries",
        "degraded_response_time": "degradedResponseTimeMs",
        "max_response_time": "maxResponseTimeMs",
        "should_fail": "shouldFail",
        "assertions": "assertions",
        "ip_family": "ipFamily",
        "traceroute_on_error": "tracerouteOnError",
    }
    assert wire_name("timeout", ms=True) in MonitorIn.model_fields
    module = module_for(
        record(
            "tcp",
            "tls",
            port=1,
            degradedResponseTimeMs=9,
            maxResponseTimeMs=2500,
            tracerouteOnError=True,
        ),
        CONFIG,
        NO_KEY,
    )
    assert (module.degraded_response_time, module.max_response_time) == (0.009, 2.5)
    assert module.traceroute_on_error and not module.should_fail
    with pytest.raises(ValidationError, match="degraded_response_time"):
        TcpMonitorIn.model_validate(
            {"name": "n", "host": "h", "port": 1, "degraded_response_time": 5}
        )
