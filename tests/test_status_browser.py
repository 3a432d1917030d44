"""The status page in a real headless Chromium against a running exporter and a seeded
database: what a person sees at desktop and phone width, in light and dark, keyboard use,
contrast, and no console errors or CSP violations."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from cdp import Browser
from processes import Process
from status_seed import CONFIG, MONITORS, Seeded, seed

from sonde_exporter.config import load_config
from sonde_exporter.monitors.identity import config_monitor_id

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

LABELS = {
    "up": "Up",
    "down": "Down",
    "timeout": "Timeout",
    "degraded": "Degraded",
    "never": "Never checked",
    "maintenance": "Maintenance",
    "disabled": "Disabled",
}
"""What each state must read as on the page (seven distinct words)."""
ROOT = Path(__file__).parent.parent
SIZES = [(1280, 800), (390, 844)]
SCHEMES = ["light", "dark"]
SPARK_POINTS = 24
BY_NAME = {m.name: m for m in MONITORS}
CHECKOUT = BY_NAME["checkout-api"]

# Helpers evaluated in the page: colours as the browser computed them, WCAG contrast.
JS = """
const rgba = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return m.length > 3 ? m : [...m, 1]; };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const contrast = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const backgroundOf = (el) => { for (let e = el; e; e = e.parentElement) {
  const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) return c; } return [255, 255, 255, 1]; };
const shown = (el) => el.checkVisibility();
const names = () => [...document.querySelectorAll('li.monitor')].filter(shown).map((li) => li.querySelector('a.name').textContent);
"""


def _run(body: str) -> str:
    return f"(() => {{ {JS} {body} }})()"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class Site:
    """A running exporter (scheduler off: nothing is probed) over a seeded database."""

    def __init__(
        self, work: Path, config: Path, monitors: list[Seeded] = MONITORS, *flags: str
    ) -> None:
        self.db = work / "sonde.db"
        seed(self.db, time.time(), monitors)
        argv = [
            *(sys.executable, "-m", "sonde_exporter", "--config.file", str(config)),
            *("--web.listen-address", "127.0.0.1:0", "--storage.path", str(self.db)),
            *("--monitors.scheduler", "off", *flags),
        ]
        self.process = Process("sonde-exporter", argv, work)
        self.url = f"http://127.0.0.1:{self.process.wait_listening()}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("site")
    config = work / "config.yml"
    config.write_text(CONFIG)
    site = Site(work, config)
    yield site
    site.process.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    browser = Browser(tmp_path_factory.mktemp("browser"))
    await browser.connect()
    yield browser
    await browser.close()


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_each_state_has_its_own_label_and_a_readable_colour(
    site: Site, browser: Browser, scheme: str
) -> None:
    browser.events.clear()
    await browser.viewport(1280, 800, scheme)
    await browser.open(f"{site.url}/status")
    seen = await browser.evaluate(
        _run("""
        const page = rgba(getComputedStyle(document.body).backgroundColor);
        const rows = [...document.querySelectorAll('li.monitor')].map((li) => {
          const badge = li.querySelector('.badge');
          const colour = rgba(getComputedStyle(badge).color);
          return {name: li.querySelector('a.name').textContent, label: badge.textContent,
                  colour: colour.join(','), contrast: contrast(colour, backgroundOf(badge))};
        });
        const chips = [...document.querySelectorAll('label.chip')].map((chip) => {
          const colour = rgba(getComputedStyle(chip).color);
          return {label: chip.querySelector('.label').textContent,
                  contrast: contrast(colour, backgroundOf(chip))};
        });
        return {page: lum(page), rows, chips};
        """)
    )
    # The emulated preference really switched the theme.
    assert seen["page"] < 0.05 if scheme == "dark" else seen["page"] > 0.9
    by_name = {row["name"]: row for row in seen["rows"]}
    assert set(by_name) == set(BY_NAME)
    for name, monitor in BY_NAME.items():
        assert by_name[name]["label"] == LABELS[monitor.state], name
    colours = {by_name[m.name]["colour"] for m in MONITORS}
    assert len(colours) == len(LABELS), f"states share a colour: {colours}"
    for row in seen["rows"] + seen["chips"]:
        # WCAG AA for normal-size text.
        assert row["contrast"] >= 4.5, row
    assert browser.problems() == []


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("page", ["overview", "detail"])
async def test_nothing_overflows_the_viewport(
    site: Site, browser: Browser, shots: Path, page: str, width: int, height: int, scheme: str
) -> None:
    browser.events.clear()
    await browser.viewport(width, height, scheme)
    path = "/status" if page == "overview" else f"/status/{CHECKOUT.id}"
    await browser.open(site.url + path)
    png = await browser.screenshot()
    (shots / f"{page}-{width}x{height}-{scheme}.png").write_bytes(png)
    assert png_size(png) == (width, height)
    wider = await browser.evaluate(
        _run("""
        const limit = document.documentElement.clientWidth;
        const bad = [];
        if (document.documentElement.scrollWidth > limit) bad.push('page ' + document.documentElement.scrollWidth);
        for (const el of document.querySelectorAll('body *')) {
          const box = el.getBoundingClientRect();
          if (box.width === 0 && box.height === 0) continue;
          if (box.right > limit + 0.5 || box.left < -0.5)
            bad.push(`${el.tagName}.${el.getAttribute('class')} ${box.left}..${box.right}`);
        }
        return bad;
        """)
    )
    assert wider == [], f"wider than {width}px: {wider[:5]}"
    assert browser.problems() == []


async def test_failed_monitors_come_first(site: Site, browser: Browser) -> None:
    browser.events.clear()
    await browser.viewport(1280, 800, "light")
    await browser.open(f"{site.url}/status")
    groups = await browser.evaluate(
        _run("""return [...document.querySelectorAll('section.group')].map((g) => [
          g.querySelector('h2').firstChild.textContent.trim(),
          [...g.querySelectorAll('a.name')].map((a) => a.textContent)]);""")
    )
    order = [name for _, names in groups for name in names]
    assert order.index("checkout-api") < order.index("homepage")
    assert dict(groups)["shop"] == ["checkout-api", "search", "payments", "homepage"]
    assert groups[0][0] == "shop"  # the group with a down monitor leads
    assert groups[-1] == ["Untagged", ["new-monitor"]]
    assert browser.problems() == []


async def test_the_sparkline_has_one_point_per_result(site: Site, browser: Browser) -> None:
    browser.events.clear()
    await browser.open(f"{site.url}/status")
    points = await browser.evaluate(
        _run("""return Object.fromEntries([...document.querySelectorAll('li.monitor')].map((li) =>
          [li.querySelector('a.name').textContent, [...li.querySelectorAll('svg.spark path.dots')].reduce((n, p) => n + p.getAttribute('d').split('M').length - 1, 0)]));""")
    )
    line = await browser.evaluate(
        _run("""return Object.fromEntries([...document.querySelectorAll('li.monitor')].map((li) =>
          [li.querySelector('a.name').textContent,
           li.querySelector('svg.spark polyline')?.points.numberOfItems ?? 0]));""")
    )
    for monitor in MONITORS:
        shown = monitor.statuses[-SPARK_POINTS:]
        assert points[monitor.name] == len(shown), monitor.name
        # The line joins the checks that have a response time.
        assert line[monitor.name] == sum(s in ("up", "degraded") for s in shown), monitor.name
    assert browser.problems() == []


async def test_the_filter_works_without_javascript(site: Site, browser: Browser) -> None:
    browser.events.clear()
    await browser.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        for query, expected in [
            ("state=down", {"checkout-api"}),
            ("q=pay", {"payments"}),
            ("state=up&state=maintenance", {"homepage", "db-primary"}),
            ("q=shop&state=timeout", {"search"}),
            ("q=nothing-like-this", set()),
        ]:
            await browser.open(f"{site.url}/status?{query}")
            assert set(await browser.evaluate(_run("return names();"))) == expected, query
        # The form itself: type into the box and press Enter.
        await browser.open(f"{site.url}/status")
        await browser.evaluate("document.getElementById('q').focus()")
        await browser.type_text("search")
        await browser.press("Enter", "Enter", 13, "\r")
        await _wait_url(browser, "q=search")
        assert set(await browser.evaluate(_run("return names();"))) == {"search"}
    finally:
        await browser.send("Emulation.setScriptExecutionDisabled", value=False)
    assert browser.problems() == []


async def _wait_url(browser: Browser, part: str) -> None:
    for _ in range(200):
        ready = await browser.evaluate(
            f"location.search.includes({part!r}) && document.readyState === 'complete'"
        )
        if ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the page never loaded a URL with {part}")


async def test_the_filter_script_narrows_as_you_type(site: Site, browser: Browser) -> None:
    browser.events.clear()
    await browser.open(f"{site.url}/status")
    await browser.evaluate("document.getElementById('q').focus()")
    await browser.type_text("db")
    assert set(await browser.evaluate(_run("return names();"))) == {"db-primary"}
    assert await browser.evaluate("document.getElementById('shown').textContent") == "1"
    assert await browser.evaluate("location.search") == "?q=db"
    await browser.evaluate("document.getElementById('q').select()")
    await browser.press("Backspace", "Backspace", 8)
    await browser.evaluate("document.querySelector('input[value=down]').focus()")
    await browser.press(" ", "Space", 32, " ")
    assert set(await browser.evaluate(_run("return names();"))) == {"checkout-api"}
    assert await browser.evaluate("location.search") == "?state=down"
    assert browser.problems() == []


async def test_the_filters_are_reachable_with_the_tab_key(site: Site, browser: Browser) -> None:
    browser.events.clear()
    await browser.open(f"{site.url}/status")
    reached = []
    for _ in range(12):
        await browser.press("Tab", "Tab", 9)
        reached.append(
            await browser.evaluate(
                "(() => { const e = document.activeElement;"
                " return [e.tagName, e.name || e.textContent.trim(), e.value || '',"
                " getComputedStyle(e).outlineStyle]; })()"
            )
        )
    controls = [(tag, name, value) for tag, name, value, _ in reached]
    assert ("INPUT", "q", "") in controls
    assert ("BUTTON", "Filter", "") in controls
    for state in LABELS:
        assert ("INPUT", "state", state) in controls, state
    # Each filter control shows where the focus is.
    assert all(outline != "none" for tag, _, _, outline in reached if tag in ("INPUT", "BUTTON"))
    assert browser.problems() == []


async def test_landmarks_and_labels(site: Site, browser: Browser) -> None:
    browser.events.clear()
    for path in ("/status", f"/status/{CHECKOUT.id}"):
        await browser.open(site.url + path)
        found = await browser.evaluate(
            _run("""
            const unlabelled = [...document.querySelectorAll('input, select, textarea')]
              .filter((i) => i.labels.length === 0 && !i.getAttribute('aria-label'));
            const dangling = [...document.querySelectorAll('[aria-labelledby]')]
              .filter((e) => !document.getElementById(e.getAttribute('aria-labelledby')));
            return {lang: document.documentElement.lang, main: document.querySelectorAll('main').length,
              banner: document.querySelectorAll('body > header').length,
              h1: document.querySelectorAll('h1').length,
              unlabelled: unlabelled.length, dangling: dangling.length,
              images: [...document.querySelectorAll('svg')].filter((s) => !s.getAttribute('aria-label')).length,
              search: document.querySelectorAll('form[role=search]').length,
              headers: [...document.querySelectorAll('th')].filter((th) => th.scope !== 'col').length,
              captions: [...document.querySelectorAll('table.results')].filter((t) => !t.caption).length};
            """)
        )
        assert found["lang"] == "en" and found["main"] == 1 and found["banner"] == 1, found
        assert found["h1"] == 1 and found["unlabelled"] == 0 and found["dangling"] == 0, found
        assert found["images"] == 0 and found["headers"] == 0 and found["captions"] == 0, found
        assert found["search"] == (1 if path == "/status" else 0), found
    assert browser.problems() == []


async def test_the_detail_page_shows_the_history(site: Site, browser: Browser) -> None:
    browser.events.clear()
    await browser.viewport(1280, 800, "light")
    await browser.open(f"{site.url}/status/{CHECKOUT.id}")
    seen = await browser.evaluate(
        _run("""
        const line = (cls) => document.querySelector(`svg.chart line.thr.${cls}`);
        return {points: document.querySelectorAll('svg.chart circle').length,
          degradedY: +line('degraded').getAttribute('y1'), maxY: +line('down').getAttribute('y1'),
          labels: [...document.querySelectorAll('svg.chart .thr-label')].map((t) => t.textContent),
          bands: [...document.querySelectorAll('svg.timeline rect')].map((r) => r.getAttribute('class')),
          rows: document.querySelectorAll('table.results tbody tr').length,
          attempts: document.querySelector('table.results tbody tr td:nth-child(4)').textContent,
          reason: document.querySelector('table.results tbody tr td:nth-child(6)').textContent,
          hops: [...document.querySelectorAll('table.hops tbody tr')].map((r) => r.cells[1].textContent),
          older: !!document.querySelector('a[rel=next]')};
        """)
    )
    assert seen["points"] == len(CHECKOUT.statuses)
    assert seen["labels"] == ["degraded 200 ms", "max 500 ms"]
    assert seen["degradedY"] > seen["maxY"]  # 200 ms is drawn below 500 ms
    assert seen["bands"] == ["band up", "band down"]
    assert seen["rows"] == 30 and seen["attempts"] == "3" and seen["reason"] == "connect_refused"
    assert seen["hops"] == ["127.0.0.2", "*", "*"]
    assert not seen["older"]
    await browser.open(f"{site.url}/status/{CHECKOUT.id}?limit=10&offset=10")
    paged = await browser.evaluate(
        _run("""return {rows: document.querySelectorAll('table.results tbody tr').length,
          caption: document.querySelector('table.results caption').textContent,
          links: [...document.querySelectorAll('nav.pager a')].map((a) => a.getAttribute('href'))};""")
    )
    assert paged["rows"] == 10
    assert paged["caption"].startswith("Results 11\u201320 of 30")
    assert paged["links"] == ["?limit=10&offset=0", "?limit=10&offset=20"]
    assert browser.problems() == []


async def test_the_readme_screenshot_of_the_shipped_config(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """docs/status.png: /status with the monitors of config.yml, each with a day of history
    (a short outage in it), taken afresh by every run."""
    config_file = ROOT / "config.yml"
    config = load_config(config_file)
    assert config.monitors, "config.yml ships no monitor to show"
    history = ["up"] * 30 + ["down"] * 3 + ["up"] * 15
    monitors = [
        Seeded(
            m.name,
            "up",
            history,
            monitor_id=config_monitor_id(config.modules[m.module].prober, m.name),
            source="config",
            module=m.module,
            target=m.target,
            labels=dict(m.labels),
            interval=m.interval,
            status=m.status,
        )
        for m in config.monitors
    ]
    site = Site(tmp_path_factory.mktemp("readme"), config_file, monitors)
    try:
        browser.events.clear()
        await browser.viewport(1280, 800, "light")
        await browser.open(f"{site.url}/status")
        shown = await browser.evaluate(_run("return names();"))
        assert sorted(shown) == sorted(m.name for m in config.monitors)
        png = await browser.screenshot()
    finally:
        site.process.stop()
    assert png_size(png) == (1280, 800)
    (ROOT / "docs" / "status.png").write_bytes(png)
    assert browser.problems() == []


async def test_the_csp_blocks_inline_style_and_the_test_would_see_it(
    site: Site, browser: Browser
) -> None:
    """The other tests' "no console errors" would catch a CSP violation: here is one."""
    browser.events.clear()
    await browser.open(f"{site.url}/status")
    before = await browser.evaluate("getComputedStyle(document.body).color")
    await browser.evaluate(
        "document.head.insertAdjacentHTML('beforeend', '<style>body { color: rgb(1, 2, 3) }</style>')"
    )
    for _ in range(100):  # the violation report arrives as an event, shortly
        if browser.problems():
            break
        await asyncio.sleep(0.05)
    assert await browser.evaluate("getComputedStyle(document.body).color") == before
    assert any("Content Security Policy" in p for p in browser.problems()), browser.problems()
    browser.events.clear()


AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_LANDMARKS = ["landmark-one-main", "region"]
"""Best-practice rules, not WCAG-tagged, that the index once failed: checked too."""
AXE_RUN = f"""axe.run(document, {{runOnly: {{type: 'tag', values: {AXE_TAGS}}},
  rules: {{{", ".join(f"'{rule}': {{enabled: true}}" for rule in AXE_LANDMARKS)}}}}}).then((r) => ({{
  passes: r.passes.length,
  violations: r.violations.map((v) => `${{v.id}} (${{v.impact}}): ` +
    v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '))}}))"""


def axe_source() -> str:
    """axe-core, installed by `npm ci --prefix tests/js` (make system-deps): missing, the test
    fails rather than passing without a check."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci --prefix tests/js` (make system-deps)")
    return AXE.read_text()


async def axe(browser: Browser, url: str, source: str, prepare: str = "") -> dict[str, object]:
    """axe-core's WCAG 2.1 A/AA rules on the page at `url`. Injected through the DevTools
    protocol, which the page's CSP does not govern (the page itself stays unchanged)."""
    await browser.open(url)
    if prepare:
        await browser.evaluate(prepare)
    await browser.evaluate(source)
    result: dict[str, object] = await browser.evaluate(AXE_RUN)
    return result


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


@pytest.fixture(scope="module")
def public_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("public-site")
    config = work / "config.yml"
    config.write_text(CONFIG)
    site = Site(work, config, MONITORS, "--web.status-page.public")
    yield site
    site.process.stop()


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_every_html_page_passes_axe(
    site: Site, public_site: Site, browser: Browser, scheme: str
) -> None:
    """Every HTML page the server serves (/, /status filtered or not, public or not,
    /status/{id} and its later pages) has no violation of axe-core's WCAG 2.1 AA rules, in
    both colour schemes (contrast) and at phone width."""
    source = axe_source()
    # a probe first (of a closed loopback port), so that / shows a row in its table
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        url = f"{site.url}/probe?module=tcp_slow&target=127.0.0.1:{port}"
        assert b"probe_success 0" in await asyncio.to_thread(_fetch, url)
    pages = [
        f"{site.url}/",
        f"{site.url}/status",
        f"{site.url}/status?state=down&q=api",
        f"{site.url}/status/{CHECKOUT.id}",
        f"{site.url}/status/{CHECKOUT.id}?limit=10&offset=10",
        f"{public_site.url}/status",
        f"{public_site.url}/status/{CHECKOUT.id}",
    ]
    found = {}
    for width, height in SIZES:
        await browser.viewport(width, height, scheme)
        for url in pages:
            result = await axe(browser, url, source)
            assert isinstance(result["passes"], int) and result["passes"] > 5, (url, result)
            found[f"{url} at {width}px"] = result["violations"]
    assert {url: v for url, v in found.items() if v} == {}


async def test_axe_would_see_a_violation(site: Site, browser: Browser) -> None:
    """The check above can fail: the index without its language and main landmark is caught."""
    await browser.viewport(1280, 800, "light")
    strip = """(() => { document.documentElement.removeAttribute('lang');
      const main = document.querySelector('main'); main.replaceWith(...main.childNodes); })()"""
    result = await axe(browser, f"{site.url}/", axe_source(), strip)
    violations = [str(v).split()[0] for v in result["violations"]]  # type: ignore[attr-defined]
    assert {"html-has-lang", *AXE_LANDMARKS} <= set(violations), result
