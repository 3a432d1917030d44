"""`sonde-exporter api-key create|list|revoke`, and the keys on a running server: created
and revoked while it runs, scopes not implied, last use recorded, only hashes stored."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
import time

import pytest
from api_harness import Api, cli, create_key, start_api

from sonde_exporter.api.auth import REFRESH_SECONDS, TOUCH_SECONDS


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    return await start_api(aiohttp_client, tmp_path, scheduler=False)


def test_create_prints_one_line_and_stores_only_the_hash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "keys.db"
    # the real command line, as an operator runs it
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sonde_exporter",
            "api-key",
            "--storage.path",
            str(db),
            "create",
            "--name",
            "ci",
            "--scope",
            "tcp-monitors:read",
            "--scope",
            "sd:read",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = run.stdout.splitlines()
    assert len(lines) == 1
    key = lines[0]
    assert key.startswith("sonde_") and len(key) == len("sonde_") + 43
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, hash, scopes FROM api_keys").fetchall()
    assert rows == [
        ("ci", hashlib.sha256(key.encode()).digest(), '["sd:read", "tcp-monitors:read"]')
    ]
    assert key.encode() not in db.read_bytes() + (tmp_path / "keys.db-wal").read_bytes()


def test_list_never_shows_keys_and_revoke_deletes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "keys.db"
    key = create_key(db, "ci", ["tcp-monitors:write"])
    code, out = cli("api-key", "--storage.path", str(db), "list")
    assert code == 0
    assert key not in out
    header, row = out.splitlines()
    assert header.split("\t") == ["NAME", "SCOPES", "CREATED", "LAST USED"]
    assert row.split("\t")[:2] == ["ci", "tcp-monitors:write"]
    assert row.endswith("\tnever")
    assert (
        cli("api-key", "--storage.path", str(db), "create", "--name", "ci", "--scope", "sd:read")[0]
        == 1
    )
    assert cli("api-key", "--storage.path", str(db), "revoke", "ci") == (0, "revoked ci\n")
    assert cli("api-key", "--storage.path", str(db), "revoke", "ci")[0] == 1
    assert cli("api-key", "--storage.path", str(db), "list")[1].count("\n") == 1


def test_storage_path_before_or_after_the_subcommand(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--storage.path is taken before the subcommand and after it, as users type it; each
    order reaches the file it names (and not the default one)."""
    before, after = tmp_path / "before.db", tmp_path / "after.db"
    create = ["create", "--name", "ci", "--scope", "sd:read"]
    assert cli("api-key", "--storage.path", str(before), *create)[0] == 0
    # the real command line, with the flag last, as in the issue
    run = subprocess.run(
        [sys.executable, "-m", "sonde_exporter", "api-key", *create, "--storage.path", str(after)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("sonde_")
    for db in (before, after):
        for args in (("--storage.path", str(db), "list"), ("list", "--storage.path", str(db))):
            code, out = cli("api-key", *args)
            assert code == 0
            assert out.splitlines()[1].split("\t")[:2] == ["ci", "sd:read"]
    assert not (tmp_path / "data").exists()  # neither order fell back to the default file
    # after the subcommand it wins over the one before it
    code, _ = cli(
        "api-key", "--storage.path", str(before), "revoke", "ci", "--storage.path", str(after)
    )
    assert code == 0
    assert cli("api-key", "list", "--storage.path", str(after))[1].count("\n") == 1
    assert cli("api-key", "list", "--storage.path", str(before))[1].count("\n") == 2


def test_bad_arguments_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "k.db")
    for args in (
        ["create", "--name", "x", "--scope", "tcp-monitors:admin"],
        ["create", "--name", "x"],
        ["create", "--name", "", "--scope", "sd:read"],
        ["create", "--name", "   ", "--scope", "sd:read"],  # the names' rule (plain_name)
        ["create", "--name", "ci\u202e", "--scope", "sd:read"],
    ):
        with pytest.raises(SystemExit) as exit_:
            cli("api-key", "--storage.path", db, *args)
        assert exit_.value.code == 2


async def test_keys_created_and_revoked_while_the_server_runs(api: Api) -> None:
    status, _ = await api.call("GET", "/v1/tcp-monitors", key="sonde_unknown")
    assert status == 401
    key = create_key(api.db, "new", ["tcp-monitors:read"])
    assert (await api.call("GET", "/v1/tcp-monitors", key=key))[0] == 200  # at once
    assert cli("api-key", "--storage.path", str(api.db), "revoke", "new")[0] == 0
    revoked_at = time.monotonic()
    # REFRESH_SECONDS is the promise; the bound adds room for a loaded box
    for _ in range(int((REFRESH_SECONDS + 2) / 0.05)):
        if (await api.call("GET", "/v1/tcp-monitors", key=key))[0] == 401:
            break
        await asyncio.sleep(0.05)
    assert (await api.call("GET", "/v1/tcp-monitors", key=key))[0] == 401
    assert time.monotonic() - revoked_at < REFRESH_SECONDS + 2


async def test_write_does_not_imply_read(api: Api) -> None:
    writer = create_key(api.db, "writer", ["tcp-monitors:write"])
    status, answer = await api.call(
        "POST", "/v1/tcp-monitors", {"name": "w", "host": "127.0.0.1", "port": 1}, key=writer
    )
    assert status == 201
    assert (await api.call("GET", "/v1/tcp-monitors", key=writer))[0] == 403
    assert (await api.call("GET", f"/v1/tcp-monitors/{answer['data']['id']}", key=writer))[0] == 403
    # a scope of one kind opens no other kind
    assert (await api.call("GET", "/v1/icmp-monitors", key=writer))[0] == 403


async def test_last_use_is_recorded(api: Api) -> None:
    key = create_key(api.db, "used", ["sd:read"])
    assert (await api.call("GET", "/v1/sd", key=key))[0] == 200
    for _ in range(100):  # written without waiting for the request: poll briefly
        _, out = cli("api-key", "--storage.path", str(api.db), "list")
        row = next(line for line in out.splitlines() if line.startswith("used\t"))
        if not row.endswith("never"):
            break
        await asyncio.sleep(0.05)
    assert not row.endswith("never")
    assert TOUCH_SECONDS <= 60  # "last used" is at most a minute stale


async def test_bearer_scheme_is_case_insensitive_and_other_schemes_are_401(api: Api) -> None:
    for header, status in (
        (f"bearer {api.key}", 200),
        (f"BEARER {api.key}", 200),
        (f"Token {api.key}", 401),
        (api.key, 401),
        ("Bearer ", 401),
    ):
        response = await api.client.get("/v1/tcp-monitors", headers={"Authorization": header})
        assert response.status == status, header
