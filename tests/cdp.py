"""Debian's headless Chromium, driven over the Chrome DevTools Protocol with aiohttp's
websocket client: no Selenium, no Playwright, no browser download.

Chromium runs with a fresh profile, every background service off, and a host resolver that
answers nothing but loopback, so the browser sends no packet and no DNS query off this
machine (the house rule); pages load only from the exporter under test on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
from processes import Process, wait_for

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def chromium_argv(profile: Path) -> list[str]:
    argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        # Chromium refuses to start as root with its sandbox on (the sandbox needs an
        # unprivileged user namespace it will not create for root); CI runs everything as
        # root, and the browser only ever loads the exporter's own pages from loopback.
        argv.append("--no-sandbox")
    return [*argv, "about:blank"]


class Browser:
    """One Chromium process and a DevTools session on its first page."""

    def __init__(self, work: Path) -> None:
        if shutil.which(CHROMIUM) is None:
            raise AssertionError(f"{CHROMIUM} is missing: run .ci/install-system-deps")
        self.profile = work / "chromium-profile"
        self.profile.mkdir()
        self.process = Process("chromium", chromium_argv(self.profile), work)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        port_file = self.profile / "DevToolsActivePort"
        text = wait_for(
            "Chromium's DevTools port", lambda: port_file.exists() and port_file.read_text()
        )
        port = int(text.splitlines()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        page = next(t for t in targets if t["type"] == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self.process.stop()

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(AssertionError(f"CDP error: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
                continue
            self.events.append((data["method"], data.get("params", {})))
            for waiter in [w for w in self._waiters if w[0] == data["method"]]:
                self._waiters.remove(waiter)
                if not waiter[1].done():
                    waiter[1].set_result(data.get("params", {}))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        return await asyncio.wait_for(future, 30)

    async def open(self, url: str) -> None:
        """Navigate and wait for the load event (stylesheet and script included)."""
        loaded: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append(("Page.loadEventFired", loaded))
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded, 30)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def viewport(self, width: int, height: int, scheme: str) -> None:
        """The window size, and the colour scheme the page sees (prefers-color-scheme)."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        await self.send(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )

    async def screenshot(self) -> bytes:
        """The viewport as PNG."""
        result = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])

    async def press(self, key: str, code: str, key_code: int, text: str = "") -> None:
        """A real key press (down, up) as the keyboard would send it."""
        common = {"key": key, "code": code, "windowsVirtualKeyCode": key_code}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    async def type_text(self, text: str) -> None:
        await self.send("Input.insertText", text=text)

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and CSP violations so far."""
        found = []
        for method, params in self.events:
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning"):
                found.append(f"console.{params['type']}: {params['args']}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                entry = params["entry"]
                found.append(f"log {entry['source']}: {entry['text']} ({entry.get('url')})")
        return found
