"""The fields beyond the TCP contract: status and isEnabled, module, the probe policies in
camelCase (validated by the same config models as a module's), and the ICMP and email
monitors with their own fields and rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_harness import Api, start_api

TCP = {"name": "web", "host": "127.0.0.1", "port": 8080}
ICMP = {"name": "gw", "host": "127.0.0.1"}
EMAIL = {
    "name": "mail",
    "smtpUrl": "smtp://127.0.0.1:587",
    "receiveUrl": "imaps://127.0.0.1:993",
    "email": "probe@example.com",
    "username": "probe",
    "password": "s3cret-Pa55",
}


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    return await start_api(aiohttp_client, tmp_path, scheduler=False)


async def refused(api: Api, method: str, path: str, body: Any) -> str:
    before = api.snapshot()
    status, answer = await api.call(method, path, body)
    assert status == 400, answer
    assert answer["error"]["code"] == "VALIDATION_ERROR"
    assert api.snapshot() == before
    return str(answer["error"]["message"])


# --- status and isEnabled -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "status", "enabled"),
    [
        ({}, "active", True),
        ({"status": "maintenance"}, "maintenance", True),
        ({"status": "disabled"}, "disabled", False),
        ({"status": "paused"}, "disabled", False),
        ({"status": "inactive"}, "disabled", False),
        ({"isEnabled": False}, "disabled", False),
        ({"isEnabled": True, "status": "maintenance"}, "maintenance", True),
        ({"isEnabled": False, "status": "paused"}, "disabled", False),
    ],
)
async def test_status_and_is_enabled_agree(
    api: Api, sent: dict[str, Any], status: str, enabled: bool
) -> None:
    monitor = await api.create("tcp", {**TCP, **sent})
    assert (monitor["status"], monitor["isEnabled"]) == (status, enabled)


@pytest.mark.parametrize(
    "sent",
    [{"isEnabled": False, "status": "active"}, {"isEnabled": True, "status": "paused"}],
)
async def test_contradicting_status_and_is_enabled_are_refused(
    api: Api, sent: dict[str, Any]
) -> None:
    message = await refused(api, "POST", "/v1/tcp-monitors", {**TCP, **sent})
    assert message.startswith("isEnabled:")


async def test_put_is_enabled_keeps_maintenance_and_pausing_works(api: Api) -> None:
    monitor = await api.create("tcp", {**TCP, "status": "maintenance"})
    path = f"/v1/tcp-monitors/{monitor['id']}"
    _, answer = await api.call("PUT", path, {"isEnabled": True})
    assert answer["data"]["status"] == "maintenance"
    _, answer = await api.call("PUT", path, {"status": "paused"})
    assert (answer["data"]["status"], answer["data"]["isEnabled"]) == ("disabled", False)
    _, answer = await api.call("PUT", path, {"isEnabled": True})
    assert (answer["data"]["status"], answer["data"]["isEnabled"]) == ("active", True)
    message = await refused(api, "PUT", path, {"status": "bogus"})
    assert message.startswith("status:")


# --- module and policies ------------------------------------------------------------------


async def test_module_names_a_config_module_of_the_right_prober(api: Api) -> None:
    monitor = await api.create("tcp", {**TCP, "module": "tcp_tls"})
    assert monitor["module"] == "tcp_tls"
    assert api.exporter.monitors.plans[monitor["id"]].module.tcp.tls  # type: ignore[union-attr]
    message = await refused(api, "POST", "/v1/tcp-monitors", {**TCP, "module": "nope"})
    assert message.startswith("module: 'nope' is not in config.yml")
    message = await refused(api, "POST", "/v1/tcp-monitors", {**TCP, "module": "icmp"})
    assert message == "module: 'icmp' is a icmp module"


POLICIES = {
    "retries": {"max": 2, "backoff": "exponential", "delayMs": 200, "on": "network_error"},
    "degradedResponseTimeMs": 300,
    "maxResponseTimeMs": 2000,
    "assertions": [{"source": "response_time", "comparison": "less_than", "target": "1s"}],
    "ipFamily": "IPv4",
    "tracerouteOnError": False,
    "tags": ["prod", "eu"],
    "data": "PING\n",
}


async def test_policies_are_returned_and_run_as_module_settings(api: Api) -> None:
    monitor = await api.create("tcp", {**TCP, **POLICIES})
    assert {k: monitor[k] for k in POLICIES} == POLICIES
    module = api.exporter.monitors.plans[monitor["id"]].module
    assert module.retries is not None and module.retries.max == 2
    assert module.degraded_response_time == 0.3
    assert module.max_response_time == 2.0
    assert module.timeout == 5.0
    assert module.tcp is not None and module.tcp.query_response[-1].send == "PING\n"
    assert module.tcp.preferred_ip_protocol == "ip4" and not module.tcp.ip_protocol_fallback
    # a null removes a policy; the others stay
    _, answer = await api.call(
        "PUT", f"/v1/tcp-monitors/{monitor['id']}", {"degradedResponseTimeMs": None}
    )
    assert answer["data"]["degradedResponseTimeMs"] is None
    assert answer["data"]["maxResponseTimeMs"] == 2000


async def test_unset_policies_show_as_null(api: Api) -> None:
    monitor = await api.create("tcp", TCP)
    for field in ("retries", "degradedResponseTimeMs", "shouldFail", "assertions", "data"):
        assert monitor[field] is None
    assert monitor["tags"] == []


@pytest.mark.parametrize(
    ("sent", "field", "why"),
    [
        ({"degradedResponseTimeMs": 5000}, "degradedResponseTimeMs", "not below the 5s timeout"),
        (
            {"degradedResponseTimeMs": 900, "maxResponseTimeMs": 800},
            "maxResponseTimeMs",
            "below degradedResponseTimeMs (",
        ),
        (
            {"shouldFail": True, "degradedResponseTimeMs": 100},
            "shouldFail",
            "shouldFail cannot be used with degradedResponseTimeMs",
        ),
        ({"retries": {"max": 11}}, "retries.max", "less than or equal to 10"),
        (
            {"retries": {"max": 10, "delayMs": 1000}, "timeoutMs": 2000},
            "retries",
            "does not fit",
        ),
        (
            {"assertions": [{"source": "packet_loss", "comparison": "less_than", "target": 0.1}]},
            "assertions[0]",
            "not measured by the tcp prober",
        ),
        (
            {"assertions": [{"source": "response_time", "comparison": "less_than"}]},
            "assertions[0]",
            "needs a target",
        ),
        ({"ipFamily": "IPv5"}, "ipFamily", "must be"),
        ({"tags": ["a" * 65]}, "tags[0]", "at most 64"),
        ({"retries": {"tries": 1}}, "retries.tries", "unknown field"),
    ],
)
async def test_a_bad_policy_is_refused_naming_its_field(
    api: Api, sent: dict[str, Any], field: str, why: str
) -> None:
    message = await refused(api, "POST", "/v1/tcp-monitors", {**TCP, **sent})
    assert message.startswith(f"{field}"), message
    assert why in message
    assert not CONFIG_NAMES.search(message), message


CONFIG_NAMES = re.compile(r"degraded_response_time|max_response_time|should_fail|icmp\.count")
"""Config names the API's fields stand for: an API message names the API's fields only."""


async def test_an_icmp_message_names_the_api_fields(api: Api) -> None:
    jitter = {"source": "jitter", "comparison": "less_than", "target": "1s"}
    body = {**ICMP, "count": 1, "assertions": [jitter]}
    message = await refused(api, "POST", "/v1/icmp-monitors", body)
    assert message.startswith("assertions[0]: jitter needs two replies, so count must be"), message


# --- ICMP ---------------------------------------------------------------------------------


async def test_icmp_monitor_defaults_and_module(api: Api) -> None:
    monitor = await api.create("icmp", ICMP)
    assert monitor["id"].startswith("icmpm_")
    assert (monitor["packetSize"], monitor["count"]) == (56, 3)
    assert (monitor["timeoutMs"], monitor["intervalSeconds"]) == (5000, 60)
    module = api.exporter.monitors.plans[monitor["id"]].module.icmp
    assert module is not None and (module.payload_size, module.count) == (56, 3)
    monitor = await api.create("icmp", {**ICMP, "packetSize": 1472, "count": 10, "host": "::1"})
    module = api.exporter.monitors.plans[monitor["id"]].module.icmp
    assert module is not None and (module.payload_size, module.count) == (1472, 10)


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("https://example.com", "has a URL scheme"),
        ("example.com/ping", "has a path"),
        ("example.com:80", "has a port"),
        ("exa mple.com", "whitespace"),
        ("", "at least 1 character"),
    ],
)
async def test_icmp_host_rules(api: Api, host: str, rule: str) -> None:
    message = await refused(api, "POST", "/v1/icmp-monitors", {**ICMP, "host": host})
    assert message.startswith("host:")
    assert rule in message
    if host:
        assert "Invalid hostname" in message


@pytest.mark.parametrize(
    ("sent", "field"),
    [({"packetSize": 65508}, "packetSize"), ({"count": 0}, "count"), ({"count": 101}, "count")],
)
async def test_icmp_ranges(api: Api, sent: dict[str, Any], field: str) -> None:
    message = await refused(api, "POST", "/v1/icmp-monitors", {**ICMP, **sent})
    assert message.startswith(field)


async def test_icmp_count_must_fit_the_timeout(api: Api) -> None:
    message = await refused(
        api, "POST", "/v1/icmp-monitors", {**ICMP, "count": 100, "timeoutMs": 1000}
    )
    assert message.startswith("count: sending 100 echo requests")


# --- email --------------------------------------------------------------------------------


async def test_email_monitor_fields_and_the_implicit_module(api: Api) -> None:
    monitor = await api.create("email", EMAIL)
    assert monitor["id"].startswith("emailm_")
    assert "password" not in monitor
    shown = {k: v for k, v in EMAIL.items() if k != "password"}
    assert {k: monitor[k] for k in shown} == shown
    assert monitor["from"] is None
    assert monitor["module"] == "email"  # no module named email in the config: a plain one
    assert (monitor["timeoutMs"], monitor["intervalSeconds"]) == (30000, 300)
    module = api.exporter.monitors.plans[monitor["id"]].module.email
    assert module is not None
    assert module.smtp.url == EMAIL["smtpUrl"] and module.smtp.secret == EMAIL["password"]
    assert module.receive.url == EMAIL["receiveUrl"] and module.receive.secret == EMAIL["password"]
    assert (module.to, module.mail_from) == ("probe@example.com", "probe@example.com")


async def test_email_put_keeps_the_password_unless_sent(api: Api) -> None:
    monitor = await api.create("email", EMAIL)
    path = f"/v1/email-monitors/{monitor['id']}"
    status, answer = await api.call("PUT", path, {"from": "other@example.com"})
    assert status == 200 and "password" not in answer["data"]
    module = api.exporter.monitors.plans[monitor["id"]].module.email
    assert module is not None and module.smtp.secret == EMAIL["password"]
    assert module.mail_from == "other@example.com"
    await api.call("PUT", path, {"password": "n3w"})
    module = api.exporter.monitors.plans[monitor["id"]].module.email
    assert module is not None and module.receive.secret == "n3w"


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"smtpUrl": "http://127.0.0.1"}, "smtpUrl"),
        ({"smtpUrl": "imap://127.0.0.1"}, "smtpUrl"),
        ({"receiveUrl": "smtp://127.0.0.1"}, "receiveUrl"),
        ({"email": "not-an-address"}, "email"),
        ({"from": "bad address@x"}, "from"),
        ({"password": ""}, "password"),
        ({"password": "a\nb"}, "password"),
        ({"username": None}, "username"),
    ],
)
async def test_email_rules(api: Api, sent: dict[str, Any], field: str) -> None:
    message = await refused(api, "POST", "/v1/email-monitors", {**EMAIL, **sent})
    assert message.startswith(field), message
    assert EMAIL["password"] not in message


@pytest.mark.parametrize("field", ["smtpUrl", "receiveUrl", "email", "username", "password"])
async def test_email_required_fields(api: Api, field: str) -> None:
    body = {k: v for k, v in EMAIL.items() if k != field}
    assert await refused(api, "POST", "/v1/email-monitors", body) == f"{field}: required"


async def test_each_kind_lists_only_its_own(api: Api) -> None:
    tcp = await api.create("tcp", TCP)
    icmp = await api.create("icmp", ICMP)
    email = await api.create("email", EMAIL)
    for kind, monitor in (("tcp", tcp), ("icmp", icmp), ("email", email)):
        _, answer = await api.call("GET", f"/v1/{kind}-monitors")
        assert [m["id"] for m in answer["data"]] == [monitor["id"]]


async def test_a_monitor_whose_module_was_removed_can_still_be_disabled(
    api: Api, tmp_path: Any
) -> None:
    """Removing its module from config.yml must not lock a monitor: a PUT that leaves what
    the module is built from as stored (status, isEnabled, name, tags) is taken, and the
    monitor stays not runnable, its reason kept; a PUT that needs the module is refused."""
    monitor = await api.create("tcp", {**TCP, "module": "tcp_tls"})
    path = f"/v1/tcp-monitors/{monitor['id']}"
    (tmp_path / "config.yml").write_text("modules:\n  tcp:\n    prober: tcp\n    timeout: 5s\n")
    await api.exporter.reload()
    engine = api.exporter.monitors
    assert monitor["id"] not in engine.plans
    assert "'tcp_tls' is not in config.yml" in engine.plan_errors[monitor["id"]]
    for sent in ({"isEnabled": False}, {"status": "maintenance"}, {"name": "web2", "tags": ["x"]}):
        status, answer = await api.call("PUT", path, sent)
        assert status == 200, answer
    assert (answer["data"]["status"], answer["data"]["name"]) == ("maintenance", "web2")
    assert "'tcp_tls' is not in config.yml" in engine.plan_errors[monitor["id"]]
    assert monitor["id"] not in engine.plans
    message = await refused(api, "PUT", path, {"port": 8081})
    assert message.startswith("module: 'tcp_tls' is not in config.yml")
    status, answer = await api.call("PUT", path, {"module": "tcp", "isEnabled": True})
    assert status == 200, answer
    assert monitor["id"] in engine.plans and monitor["id"] not in engine.plan_errors
