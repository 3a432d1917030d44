"""Names, tags and labels: one rule (config.fields.plain_name / plain_text) for config.yml and
the management API alike. Characters that are invisible (U+200B), reorder text (U+202E) or
break lines (U+0085, U+2028, U+2029) are refused naming the field and the code point, and so
is a name of only white space; every log line escapes what is not printable, so that such a
character from anywhere (a server's banner) never splits or disguises a line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import yaml
from api_harness import Api, start_api

from sonde_exporter.config import ConfigError
from sonde_exporter.config.loader import parse_config
from sonde_exporter.logs import JsonFormatter, LogfmtFormatter, fields

MODULES = "modules:\n  tcp:\n    prober: tcp\n"
REFUSED = {
    "\u0085": "U+0085 (a control character)",
    "\u2028": "U+2028 (LINE SEPARATOR)",
    "\u2029": "U+2029 (PARAGRAPH SEPARATOR)",
    "\u202e": "U+202E (RIGHT-TO-LEFT OVERRIDE)",
    "\u200b": "U+200B (ZERO WIDTH SPACE)",
    "\x7f": "U+007F (a control character)",
    "\ufeff": "U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
}
BLANK = ["   ", "\u3000", "\u00a0 "]  # spaces, an ideographic space, a no-break space
ALLOWED = ["caf\u00e9 \u2014 \u65e5\u672c", "a b", "\U0001f600 up"]


def config_error(monitor: dict[str, Any]) -> str:
    text = MODULES + yaml.safe_dump(
        {"monitors": [{"module": "tcp", "target": "127.0.0.1:9", "interval": "10s"} | monitor]}
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sonde.yml")
    return str(info.value)


@pytest.mark.parametrize("char", REFUSED)
def test_config_refuses_the_character_naming_field_and_code_point(char: str) -> None:
    expected = f"{REFUSED[char]} is not allowed"
    assert f"monitors[0].name: {expected}" in config_error({"name": f"web{char}x"})
    assert f"monitors[0].labels.team: {expected}" in config_error(
        {"name": "web", "labels": {"team": f"ops{char}"}}
    )


@pytest.mark.parametrize("name", BLANK)
def test_config_refuses_a_blank_name(name: str) -> None:
    assert "monitors[0].name: must not be blank" in config_error({"name": name})


@pytest.mark.parametrize("name", ALLOWED)
def test_config_and_api_accept_other_text(name: str) -> None:
    text = MODULES + yaml.safe_dump(
        {"monitors": [{"name": name, "module": "tcp", "target": "127.0.0.1:9", "interval": "10s"}]}
    )
    assert parse_config(text, "sonde.yml").monitors[0].name == name


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    return await start_api(aiohttp_client, tmp_path, scheduler=False)


async def refused(api: Api, method: str, path: str, body: dict[str, Any]) -> str:
    before = api.snapshot()
    status, answer = await api.call(method, path, body)
    assert status == 400, answer
    assert answer["error"]["code"] == "VALIDATION_ERROR"
    assert api.snapshot() == before  # nothing written
    message: str = answer["error"]["message"]
    return message


async def test_api_create_and_update_refuse_with_the_same_rule(api: Api) -> None:
    body = {"name": "web", "host": "127.0.0.1", "port": 9, "intervalSeconds": 10}
    created = await api.create("tcp", body)
    path = f"/v1/tcp-monitors/{created['id']}"
    for char, point in REFUSED.items():
        expected = f"{point} is not allowed"
        for method, url in (("POST", "/v1/tcp-monitors"), ("PUT", path)):
            message = await refused(api, method, url, body | {"name": f"we{char}b"})
            assert message == f"name: {expected}", (method, message)
            message = await refused(api, method, url, body | {"tags": ["ok", f"t{char}"]})
            assert message == f"tags[1]: {expected}", (method, message)
    for name in BLANK:
        for method, url in (("POST", "/v1/tcp-monitors"), ("PUT", path)):
            message = await refused(api, method, url, body | {"name": name})
            assert message == "name: must not be blank", (method, message)
            message = await refused(api, method, url, body | {"tags": [name]})
            assert message == "tags[0]: must not be blank", (method, message)
    for name in ALLOWED:
        status, answer = await api.call("PUT", path, {"name": name, "tags": [name]})
        assert status == 200, answer
        assert (answer["data"]["name"], answer["data"]["tags"]) == (name, [name])


HOSTILE = "web\u2028level=error msg=forged\u0085x\u202ey\u2029z\x7f"


def record(msg: str, **extra: Any) -> logging.LogRecord:
    line = logging.LogRecord("sonde_exporter.probe", logging.ERROR, __file__, 1, msg, (), None)
    line.__dict__.update(fields(**extra))
    return line


def test_logfmt_escapes_every_non_printable_character() -> None:
    line = LogfmtFormatter().format(record(HOSTILE, monitor=HOSTILE, target=f"{HOSTILE}:80"))
    assert line.isprintable(), line  # no U+2028, U+0085, U+202E, DEL: one line in any viewer
    assert len(line.splitlines()) == 1
    assert 'monitor="web\\u2028level=error msg=forged\\u0085x\\u202ey\\u2029z\\u007f"' in line
    assert json.loads(line.split(" monitor=")[1].split(" target=")[0]) == HOSTILE


def test_json_escapes_every_non_printable_character() -> None:
    line = JsonFormatter().format(record(HOSTILE, monitor=HOSTILE))
    assert line.isprintable() and line.isascii(), line
    parsed = json.loads(line)
    assert parsed["msg"] == parsed["monitor"] == HOSTILE
