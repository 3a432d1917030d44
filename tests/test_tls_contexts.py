"""TLS client contexts: built only for modules that use TLS, once per distinct settings and
files, shared by every module and monitor with them; file paths resolved at load, so an API
monitor's module finds its files whatever the working directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from api_harness import CONFIG, start_api
from helpers import assert_succeeded, probe
from tcpservers import Pki, hold_open

from sonde_exporter.config import ConfigError, load_config, parse_config
from sonde_exporter.tlscontexts import cache_stats

PRIVATE_CA = """\
  private:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
      tls_config: {ca_file: ca.pem}
"""


def builds() -> int:
    return cache_stats().builds


def tls_modules(count: int, **tls_config: str) -> str:
    settings = ", ".join(f"{k}: {v}" for k, v in tls_config.items())
    return "".join(
        f"  t{i}:\n    prober: tcp\n    tcp:\n      tls: true\n      tls_config: {{{settings}}}\n"
        for i in range(count)
    )


def test_plain_modules_build_no_context_and_tls_modules_share_one(tmp_path: Path) -> None:
    Pki.create(tmp_path)
    plain = "".join(f"  p{i}:\n    prober: tcp\n" for i in range(100))
    text = "modules:\n" + plain + tls_modules(100, ca_file="ca.pem", min_version="TLS12")
    before = builds()
    config = parse_config(text, str(tmp_path / "config.yml"))
    assert builds() == before + 1  # one for the hundred TLS modules, none for the plain ones
    contexts = {
        id(m.tcp.tls_config.context) for n, m in config.modules.items() if m.tcp and n[0] == "t"
    }
    assert len(contexts) == 1
    starttls = "  s:\n    prober: tcp\n    tcp:\n      query_response: [{starttls: true}]\n"
    lookups = cache_stats().builds + cache_stats().hits
    parse_config("modules:\n" + starttls, "other.yml")  # a starttls step uses TLS too
    # One lookup: a build, or a hit when an earlier test already built the system CA's context.
    assert cache_stats().builds + cache_stats().hits == lookups + 1


def test_a_reload_shares_while_the_files_are_unchanged_and_rebuilds_when_one_changed(
    tmp_path: Path,
) -> None:
    pki = Pki.create(tmp_path)
    path = tmp_path / "config.yml"
    path.write_text("modules:\n" + tls_modules(1, ca_file="ca.pem", max_version="TLS13"))
    first = load_config(path).modules["t0"].tcp
    before = builds()
    again = load_config(path).modules["t0"].tcp
    assert builds() == before and again.tls_config.context is first.tls_config.context  # type: ignore[union-attr]
    pki.ca.cert_pem.write_to_path(tmp_path / "new.pem")
    (tmp_path / "new.pem").replace(tmp_path / "ca.pem")  # as a certificate rotation does
    rotated = load_config(path).modules["t0"].tcp
    assert builds() == before + 1
    assert rotated.tls_config.context is not first.tls_config.context  # type: ignore[union-attr]


def test_an_unusable_file_is_a_config_error_only_where_tls_is_used(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    module = "  m:\n    prober: tcp\n    tcp:\n      tls: {tls}\n      tls_config:\n        ca_file: gone.pem\n"
    path.write_text("modules:\n" + module.format(tls="true"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:6: modules.m.tcp.tls_config: ca_file: cannot load "
        f"'{tmp_path / 'gone.pem'}': No such file or directory"
    )
    path.write_text("modules:\n" + module.format(tls="false"))
    assert load_config(path).modules["m"].tcp.tls_config.ca_file == str(tmp_path / "gone.pem")  # type: ignore[union-attr]


async def api_in_another_cwd(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: str
) -> Any:
    """The API server with config.yml and ca.pem in tmp_path, and the process's working
    directory elsewhere (as under systemd, where it is /)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    api = await start_api(aiohttp_client, tmp_path, config=CONFIG + modules)
    monkeypatch.chdir(elsewhere)
    return api


async def test_an_api_monitor_finds_a_relative_ca_file_from_any_working_directory(
    aiohttp_client, tmp_path, tcp_server, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    pki = Pki.create(tmp_path / "pki")
    shutil.copy(pki.ca_file, tmp_path / "ca.pem")
    port = await tcp_server(hold_open, ssl=pki.server_context())
    api = await api_in_another_cwd(aiohttp_client, tmp_path, monkeypatch, PRIVATE_CA)
    monitor = await api.create(
        "tcp",
        {"name": "tls", "module": "private", "host": "127.0.0.1", "port": port, "isEnabled": False},
    )
    status, body = await probe(api.client, monitor=monitor["id"])
    assert status == 200
    assert_succeeded(body)


async def test_distinct_api_monitors_build_no_context_unless_tls_and_then_share_one(
    aiohttp_client, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    api = await start_api(aiohttp_client, tmp_path)
    before = builds()
    ids = []
    for i in range(40):
        module = "tcp_tls" if i % 2 else "tcp"
        body = {"name": f"m{i}", "module": module, "host": f"127.0.1.{i}", "port": 1000 + i}
        ids.append((await api.create("tcp", {**body, "isEnabled": False}))["id"])
    assert builds() == before  # 20 plain ones need none; 20 TLS ones share the config's
    shared = api.exporter.config.modules["tcp_tls"].tcp.tls_config.context
    plans = api.exporter.monitors.plans
    for i, monitor_id in enumerate(ids):
        tls = plans[monitor_id].module.tcp.tls_config
        assert ("context" in vars(tls)) == bool(i % 2)  # never looked up for a plain module
        if i % 2:
            assert tls.context is shared


EMAIL = """\
  mail:
    prober: email
    email:
      smtp: {url: "smtps://127.0.0.1:1", tls_config: {ca_file: ca.pem}}
      receive: {url: "imaps://127.0.0.1:1", username: u, password: p,
                tls_config: {ca_file: ca.pem}}
      from: probe@example.com
      to: probe@example.com
"""


async def test_an_email_monitor_finds_relative_tls_files_from_any_working_directory(
    aiohttp_client, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    Pki.create(tmp_path)
    api = await api_in_another_cwd(aiohttp_client, tmp_path, monkeypatch, EMAIL)
    before = builds()
    body = {
        "name": "mail",
        "module": "mail",
        "smtpUrl": "smtps://127.0.0.2:465",
        "receiveUrl": "imaps://127.0.0.2:993",
        "email": "probe@example.com",
        "username": "probe",
        "password": "secret",
        "isEnabled": False,
    }
    monitor = await api.create("email", body)
    assert builds() == before  # both servers share the config module's context
    module = api.exporter.monitors.plans[monitor["id"]].module.email
    assert module.smtp.tls_config.ca_file == str(tmp_path / "ca.pem")
    assert module.receive.tls_config.context is module.smtp.tls_config.context
