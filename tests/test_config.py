"""Config loading: one fixture per validation error under tests/configs/, each error naming
the file, the line and the field; the good fixture and the shipped config.yml load."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from sonde_exporter.config import (
    Config,
    ConfigError,
    Module,
    ProberName,
    Secret,
    dump_yaml,
    load_config,
    parse_config,
)
from sonde_exporter.config.fields import REDACTED, Duration, Strict
from sonde_exporter.config.modules import ForeignProberName
from sonde_exporter.probers import PROBERS

CONFIGS = Path(__file__).parent / "configs"
SHIPPED = Path(__file__).parent.parent / "config.yml"

# fixture -> (line, field, part of the message). Every message starts "<file>:<line>: <field>: ".
ERRORS = {
    "unknown_key_top": (4, "scrape_interval", "unknown field"),
    "unknown_key_module": (4, "modules.tcp.timout", "unknown field"),
    "unknown_key_tcp": (6, "modules.tls.tcp.tls_conifg", "unknown field"),
    "unknown_key_tls_config": (7, "modules.tls.tcp.tls_config.insecure", "unknown field"),
    "unknown_key_query_step": (7, "modules.smtp.tcp.query_response[1].expct", "unknown field"),
    "unknown_key_label": (10, "modules.ssh.tcp.query_response[0].labels[0].help", "unknown field"),
    # a name blackbox_exporter does not know either (its http, dns ... load as unsupported)
    "unknown_prober": (
        3,
        "modules.web.prober",
        "'ftp' is not valid; expected 'tcp', 'icmp', 'email', 'http', 'dns', 'grpc', 'unix' or "
        "'websocket'",
    ),
    "missing_prober": (2, "modules.tcp.prober", "required field is missing"),
    "surrogate_send": (
        7,
        "modules.m.tcp.query_response[0].send",
        "contains '\\ud800' at position 0, which is not text",
    ),
    "bad_duration": (4, "modules.tcp.timeout", "invalid duration '5 seconds'"),
    "duration_not_string": (4, "modules.tcp.timeout", "expected a duration string"),
    "negative_timeout": (4, "modules.tcp.timeout", "must not be negative"),
    "bad_regex": (
        6,
        "modules.smtp.tcp.query_response[0].expect",
        "invalid regular expression '^(220': missing ): ^(220",
    ),
    # RE2, as Go: no backreferences, no lookaround
    "backreference_regex": (
        6,
        "modules.banner.tcp.query_response[0].expect",
        "invalid regular expression '^(\\w+) \\1$': invalid escape sequence: \\1",
    ),
    "lookahead_regex": (
        7,
        "modules.banner.tcp.query_response[1].expect",
        "invalid perl operator: (?=",
    ),
    # a model validator that blames one field names that field and its line, not the parent's
    "expect_and_expect_bytes": (
        8,
        "modules.smtp.tcp.query_response[1].expect_bytes",
        "expect and expect_bytes cannot be used in the same step",
    ),
    "empty_expect_bytes": (
        6,
        "modules.raw.tcp.query_response[0].expect_bytes",
        "must not be empty",
    ),
    "bad_ip_protocol": (
        5,
        "modules.tcp6.tcp.preferred_ip_protocol",
        "'ip5' is not valid; expected 'ip4' or 'ip6'",
    ),
    "bad_source_ip": (5, "modules.tcp.tcp.source_ip_address", "'eth0' is not an IP address"),
    "bad_label_name": (
        8,
        "modules.ssh.tcp.query_response[0].labels[0].name",
        "'1version' is not a valid Prometheus label name",
    ),
    "reserved_label_name": (
        8,
        "modules.ssh.tcp.query_response[0].labels[0].name",
        "'__name__' is not a valid Prometheus label name",
    ),
    "cert_without_key": (6, "modules.mtls.tcp.tls_config", "cert_file and key_file"),
    "missing_ca_file": (6, "modules.private_ca.tcp.tls_config", "ca_file: cannot load"),
    "bad_tls_version": (7, "modules.tls.tcp.tls_config.min_version", "'TLS14' is not valid"),
    "tls_min_above_max": (6, "modules.tls.tcp.tls_config", "min_version must not be above"),
    "duplicate_key": (5, "modules.tcp.timeout", "defined twice"),
    "duplicate_module": (4, "modules.tcp", "defined twice"),
    "wrong_type_top": (1, "(top level)", "expected a mapping"),
    "wrong_type_modules": (1, "modules", "expected a mapping"),
    "wrong_type_module": (2, "modules.tcp", "expected a mapping"),
    "wrong_type_bool": (5, "modules.tls.tcp.tls", "expected a valid boolean"),
    "wrong_type_list": (5, "modules.smtp.tcp.query_response", "expected a list"),
    "module_name_not_string": (2, "modules[1]", "keys must be non-empty strings"),
    "block_mismatch": (
        5,
        "modules.ping.icmp",
        "a module with prober 'tcp' cannot have an 'icmp' block",
    ),
    # the invalid siblings of blackbox_sample.yml, as in blackbox_exporter's testdata
    "blackbox_sample_ttl_negative": (
        7,
        "modules.ping4.icmp.ttl",
        "expected greater than or equal to 1",
    ),
    "blackbox_sample_ttl_too_big": (
        7,
        "modules.ping4.icmp.ttl",
        "expected less than or equal to 255",
    ),
    "blackbox_sample_open_class": (
        10,
        "modules.irc_ping_pong.tcp.query_response[2].expect",
        "invalid regular expression '^:[^ ]+ 00[1': missing ]: [1",
    ),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_validation_error_names_file_line_and_field(name: str) -> None:
    line, field, message = ERRORS[name]
    path = CONFIGS / f"{name}.yml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = str(info.value)
    assert error.startswith(f"{path}:{line}: {field}: "), error
    assert message in error
    assert "\n" not in error  # one problem, one line


def test_every_fixture_is_covered() -> None:
    on_disk = {p.stem for p in CONFIGS.glob("*.yml")}
    covered = {*ERRORS, "good", "blackbox_sample"}
    covered |= {"invalid_yaml", "empty", "only_comments", "two_errors"}
    assert on_disk == covered


def test_invalid_yaml_names_file_and_line() -> None:
    path = CONFIGS / "invalid_yaml.yml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:4: invalid YAML: "):
        load_config(path)


@pytest.mark.parametrize("name", ["empty", "only_comments"])
def test_empty_file_is_an_error(name: str) -> None:
    path = CONFIGS / f"{name}.yml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: the file is empty"):
        load_config(path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yml: cannot read config file"):
        load_config(tmp_path / "nope.yml")


def test_every_problem_gets_its_own_line() -> None:
    path = CONFIGS / "two_errors.yml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).splitlines() == [
        f"{path}:4: modules.a.timeout: invalid duration 'soon': "
        "use a number with a unit, such as 5s, 1m30s or 250ms",
        f"{path}:8: modules.b.tcp.tls: expected a valid boolean, unable to interpret input",
    ]


def test_good_config_loads_with_defaults_and_relative_ca_file() -> None:
    config = load_config(CONFIGS / "good.yml")
    assert set(config.modules) == {"tcp", "tcp_defaults", "tcp_all_options", "smtp_starttls"}
    defaults = config.modules["tcp_defaults"]
    assert defaults.timeout == 0
    assert defaults.tcp is not None
    assert defaults.tcp.preferred_ip_protocol == "ip4"
    assert defaults.tcp.ip_protocol_fallback is True
    full = config.modules["tcp_all_options"]
    assert full.timeout == 90
    assert full.tcp is not None
    # stored resolved against the file's directory, so a re-validation never depends on the cwd
    assert full.tcp.tls_config.ca_file == str((CONFIGS / "ca.pem").absolute())
    subjects = [
        dict(rdn[0] for rdn in c["subject"]) for c in full.tcp.tls_config.context.get_ca_certs()
    ]
    assert any(s.get("organizationName") == "sonde-exporter test fixtures" for s in subjects)
    smtp = config.modules["smtp_starttls"].tcp
    assert smtp is not None
    assert smtp.query_response[0].expect is not None
    assert smtp.query_response[0].expect.search(b"220 mail.example ESMTP")
    assert smtp.query_response[3].expect_bytes_raw == b"\x00\x01"


def test_shipped_config_loads_with_the_required_modules() -> None:
    config = load_config(SHIPPED)
    assert {"tcp", "tcp_tls"} <= set(config.modules)
    assert any(m.tcp is not None and m.tcp.query_response for m in config.modules.values()), (
        "config.yml needs a query_response example"
    )


def test_prober_names_match_the_prober_table() -> None:
    assert set(get_args(ProberName)) == set(PROBERS)
    assert not set(get_args(ForeignProberName)) & set(PROBERS)


def test_blackbox_sample_loads_with_its_http_and_dns_modules_unsupported() -> None:
    config = load_config(CONFIGS / "blackbox_sample.yml")
    assert config.unsupported == {"web": "http", "web_post": "http", "resolver": "dns"}
    supported = {name for name, module in config.modules.items() if module.supported}
    assert supported == {
        "connect_only",
        "pop3_over_tls",
        "ssh_greeting",
        "smtp_with_starttls",
        "irc_ping_pong",
        "ping4",
    }
    pop3 = config.modules["pop3_over_tls"].tcp
    assert pop3 is not None and pop3.tls
    assert pop3.query_response[0].expect is not None
    irc = config.modules["irc_ping_pong"].tcp
    assert irc is not None and irc.query_response[2].send == "PONG ${1}"
    text = dump_yaml(config)
    assert "not-shown-anywhere" not in text and "basic_auth" not in text  # blackbox's block
    assert "web_post:\n    prober: http\n    timeout: 5s\n" in text
    assert dump_yaml(parse_config(text, "dumped.yml")) == text


@pytest.mark.parametrize("block", ["http", "dns"])
def test_a_foreign_block_belongs_to_its_own_prober_too(block: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"modules:\n  m:\n    prober: tcp\n    {block}: {{}}\n", "x.yml")
    assert str(info.value) == (
        f"x.yml:4: modules.m.{block}: a module with prober 'tcp' cannot have "
        f"{'an' if block == 'http' else 'a'} '{block}' block"
    )


def test_dump_leaves_out_the_other_probers_blocks() -> None:
    text = dump_yaml(load_config(SHIPPED)).partition("\nmonitors:")[0]  # the modules only
    module_keys = re.findall(r"^    (\w+):(.*)$", text, re.MULTILINE)
    # The probers' own blocks, and the policies only tcp_strict and tcp_traced set.
    policies = {"retries", "degraded_response_time", "max_response_time", "assertions"}
    policies |= {"traceroute_on_error", "traceroute"}  # tcp_traced
    assert {key for key, _ in module_keys} == {
        "prober",
        "timeout",
        "tcp",
        "icmp",
        "email",
    } | policies
    assert [key for key, value in module_keys if value.strip() == "null"] == []


def test_dump_round_trips_with_durations_as_strings() -> None:
    config = load_config(CONFIGS / "good.yml")
    text = dump_yaml(config)
    assert "timeout: 1m30s" in text
    assert "timeout: 250ms" in text
    assert "expect: ^220[ -](.+)$" in text
    again = parse_config(text, str(CONFIGS / "dumped.yml"))
    assert dump_yaml(again) == text


class _Credentials(Strict):
    user: str
    password: Secret
    tokens: tuple[Secret, ...] = ()
    fallback: Secret | None = None
    timeout: Duration = 0.0


class _WithSecrets(BaseModel):
    modules: dict[str, _Credentials]
    by_name: dict[str, Secret]


def test_dump_renders_every_secret_as_placeholder() -> None:
    model = _WithSecrets.model_validate(
        {
            "modules": {
                "smtp": {
                    "user": "alice",
                    "password": "hunter2",
                    "tokens": ["tok-1", "tok-2"],
                    "fallback": "fallback-pw",
                    "timeout": "2s",
                }
            },
            "by_name": {"imap": "imap-pw"},
        }
    )
    text = dump_yaml(model)
    for secret in ("hunter2", "tok-1", "tok-2", "fallback-pw", "imap-pw"):
        assert secret not in text
    assert text.count(REDACTED) == 5
    assert "user: alice" in text
    assert "timeout: 2s" in text
    assert repr(model).count("hunter2") == 0  # SecretStr hides it from repr and logs too


_SECRET_LIKE = re.compile(r"pass(word|wd|phrase)?|secret|token|api_?key|credential", re.I)


def _config_models(cls: type[BaseModel] = Strict) -> set[type[BaseModel]]:
    found = set()
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("sonde_exporter."):
            found |= {sub, *_config_models(sub)}
    return found


def test_every_secret_like_field_is_typed_secret() -> None:
    """Guards /config and debug output: a password typed as str would be shown."""
    models = _config_models()
    assert Config in models and Module in models
    for model in models:
        for name, field in model.model_fields.items():
            if name.endswith(("_file", "_env")):  # where a secret is (shown), not the secret
                continue
            if _SECRET_LIKE.search(name):
                assert "SecretStr" in repr(field.annotation), f"{model.__name__}.{name}"
