"""The composition root (app.py): each resource starts in its place and stops in reverse."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from api_harness import start_api

from sonde_exporter.app import build_app
from sonde_exporter.exporter import Exporter
from sonde_exporter.monitors.options import MonitorOptions
from sonde_exporter.storage.sqlite_store import SqliteStore

EMAIL = {
    "name": "mail",
    "smtpUrl": "smtp://127.0.0.1:2525",
    "receiveUrl": "pop3://127.0.0.1:2110",
    "email": "probe@example.com",
    "username": "probe",
    "password": "a-Passw0rd",
}


async def test_the_password_key_is_loaded_before_the_engine_plans(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A stored email monitor's plan opens its sealed password: after a restart (a fresh
    composition root, whose password key nothing loaded yet), the key file must be loaded
    before the engine plans, whatever order the routes were added in."""
    api = await start_api(aiohttp_client, tmp_path, scheduler=False)
    monitor_id = (await api.create("email", EMAIL))["id"]
    await api.client.close()
    store = api.exporter.monitors.store
    assert isinstance(store, SqliteStore)
    assert store.database.error == "closed"  # the engine stopped, then the database closed
    options = MonitorOptions(storage_path=str(api.db), scheduler=False)
    exporter = Exporter.from_file(tmp_path / "config.yml", monitors=options)
    async with TestClient(TestServer(build_app(exporter))):
        engine = exporter.monitors
        assert engine.ready and engine.plan_errors == {}
        assert monitor_id in engine.plans
