"""The status page in a real browser: Debian's Chromium driven by Selenium, against the daemon
polling the simulator (the demo fleet, and a generated 10,000-number fleet).

In CI (``CI`` set) a missing browser fails the test; elsewhere it skips with the install
hint. ``SCREENSHOT=docs/status-page.png`` makes the demo test write the README's screenshot
(``scripts/screenshot`` does that).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from monitor.cli import (
    DEMO_APP_ID,
    DEMO_APP_SECRET,
    DEMO_CAPS,
    DEMO_IDENTITY_CHECK,
    DEMO_TOKEN,
    DEMO_VERIFY_TOKEN,
)
from monitor.config import load_settings
from monitor.runtime import Runtime
from monitor.simulator import Scenario, World, builtin_scenario, generate_scenario, start_simulator
from tests.conftest import write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = ("apt-get install chromium chromium-driver, and selenium "
           "(pip install -e '.[test]'); scripts/bootstrap --with-browser does both")
T = TypeVar("T")


def _driver() -> Any:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium")
    if missing:
        message = f"browser test needs {', '.join(missing)}: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1800", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                            options=options)


@dataclass
class Stack:
    """The simulator and the daemon, on an event loop of their own thread (Selenium is
    blocking); the test talks to both over HTTP only."""

    loop: asyncio.AbstractEventLoop
    sim_url: str
    url: str
    stop: Any

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def start_stack(tmp_path: Path, scenario: Scenario, *, caps: dict[str, object],
                demo: bool) -> Stack:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[str, str, Any]:
        world = World(scenario)
        runner, sim_url = await start_simulator(world)
        config = {
            "graph": {"base_url": sim_url, "api_version": "v24.0", "app_id": DEMO_APP_ID,
                      "max_retries": 1, "timeout": "5s"},
            "businesses": [{"id": b.id, "registration_cap": caps.get(b.id, "auto"),
                            "require_identity_key_check": demo and b.id in DEMO_IDENTITY_CHECK}
                           for b in scenario.businesses],
            "schedule": {"scan_interval": "1s", "jitter": 0},
            "state": {"directory": str(tmp_path / "state")},
        }
        settings = load_settings(write_config(tmp_path, config), environ={})
        runtime = Runtime(settings, access_token=DEMO_TOKEN, app_secret=DEMO_APP_SECRET,
                          webhook_verify_token=DEMO_VERIFY_TOKEN, port=0)
        await runtime.__aenter__()
        if demo:  # number changes also arrive as signed webhooks, as in `waba-monitor demo`
            world.set_webhook_target(runtime.url + settings.webhooks.path, DEMO_APP_SECRET)

        async def stop() -> None:
            await runtime.__aexit__(None, None, None)
            await runner.cleanup()

        return sim_url, runtime.url, stop

    sim_url, url, stop = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    stack = Stack(loop, sim_url, url, stop)
    wait_until(lambda: http("GET", f"{url}/-/ready")[0] == 200, 45, "daemon never ready")
    return stack


def stop_stack(stack: Stack) -> None:
    stack.call(stack.stop())
    stack.loop.call_soon_threadsafe(stack.loop.stop)


def http(method: str, url: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - loopback
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(raw) if "json" in kind else raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, None


def wait_until(check: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = _driver()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("demo"), builtin_scenario("demo"),
                        caps=dict(DEMO_CAPS), demo=True)
    try:
        yield stack
    finally:
        stop_stack(stack)


def problem_rows(driver: Any) -> list[tuple[str, ...]]:
    """(level, problem, where) of each line of "needs attention" (not the SANDBOX list)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):  # the script may swap the content between two reads: read again
        try:
            rows = driver.find_elements(By.CSS_SELECTOR,
                                        "#attention table.problems:not(.sandbox) tbody tr")
            return [(*(td.text for td in row.find_elements(By.TAG_NAME, "td")[:3]),)
                    for row in rows]  # type: ignore[misc]
        except StaleElementReferenceException:
            continue
    raise AssertionError("the problems table kept changing under the reader")


def test_the_demos_problems_come_first_most_severe_first(browser: Any, demo: Stack,
                                                         tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(demo.url + "/")
    main = browser.find_element(By.ID, "content")
    sections = [s.get_attribute("id") for s in main.find_elements(By.XPATH, "./section")]
    assert sections[0] == "attention" and "fleet" in sections
    rows = problem_rows(browser)
    levels = [level for level, _, _ in rows]
    assert levels == sorted(levels, key=lambda lv: lv != "CRITICAL") and "WARNING" in levels
    found = {(what, where.split(" · ")[0]) for _, what, where in rows}
    for what in ("status BANNED", "status OFFLINE", "quality RED", "display name DECLINED",
                 "cannot send messages (BLOCKED)"):
        assert any(w == what for w, _ in found), (what, rows)
    critical = {what for level, what, _ in rows if level == "CRITICAL"}
    assert {"status BANNED", "status OFFLINE", "quality RED"} <= critical
    assert "display name DECLINED" not in critical
    # The SANDBOX number is shown apart, never among the problems that page.
    sandbox = browser.find_element(By.CSS_SELECTOR, "#attention table.sandbox").text
    assert "Helix" in sandbox or "300000000000022" in sandbox
    assert not any("300000000000022" in where for _, _, where in rows)
    # Every line links to its alert's runbook entry.
    links = browser.find_elements(By.CSS_SELECTOR, "#attention table.problems tbody a")
    assert links and all("/docs/runbook.md#whatsapp" in a.get_attribute("href") for a in links)
    # The CSP held: the page's own script ran (it says how often it refreshes).
    assert browser.find_element(By.ID, "refresh-state").text.startswith("Updates every 10 s")
    assert not [e for e in browser.get_log("browser") if "Content Security Policy" in
                e.get("message", "")]
    shot = Path(os.environ.get("SCREENSHOT") or tmp_path / "status-page.png")
    if os.environ.get("SCREENSHOT"):  # the README's picture: after the demo's first webhooks
        wait_until(lambda: "restricted:" in browser.find_element(By.ID, "attention").text
                   or bool(browser.refresh()), 30, "the demo's restriction never showed")
    browser.set_window_size(1280, 2300)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_a_change_in_the_simulator_shows_after_the_auto_refresh_without_a_reload(
        browser: Any, demo: Stack) -> None:
    from selenium.webdriver.common.by import By

    scenario = builtin_scenario("demo")
    waba = next(w for _, w in scenario.wabas() if w.id == "200000000000002")
    number = waba.numbers[40]  # a healthy number of the generated fleet WABA
    display = number.fields["display_phone_number"]
    browser.get(demo.url + "/?refresh=1")
    assert display not in browser.find_element(By.ID, "attention").text
    box = browser.find_element(By.ID, "q")
    box.send_keys("typed, not sent")
    browser.execute_script("window.notReloaded = true; window.scrollTo(0, 300);")
    assert http("PATCH", f"{demo.sim_url}/_sim/numbers/{number.id}",
                {"status": "BANNED"})[0] == 200

    def shown() -> bool:
        return any(where.startswith(display) and what == "status BANNED"
                   for _, what, where in problem_rows(browser))

    wait_until(shown, 20, f"{display} never showed as BANNED")
    assert browser.execute_script("return window.notReloaded") is True
    assert browser.find_element(By.ID, "q").get_attribute("value") == "typed, not sent"
    assert browser.execute_script("return window.scrollY") == 300
    assert "updated" in browser.find_element(By.ID, "refresh-state").text


def test_a_verified_name_with_html_is_shown_as_text(browser: Any, demo: Stack) -> None:
    from selenium.webdriver.common.by import By

    hostile = '<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">'
    scenario = builtin_scenario("demo")
    waba = next(w for _, w in scenario.wabas() if w.id == "200000000000002")
    number = waba.numbers[41]
    assert http("PATCH", f"{demo.sim_url}/_sim/numbers/{number.id}",
                {"verified_name": hostile, "status": "BANNED"})[0] == 200
    browser.get(demo.url + "/?refresh=1")
    wait_until(lambda: hostile in browser.find_element(By.ID, "attention").text, 20,
               "the hostile name never showed")
    browser.get(demo.url + "/?q=" + urllib.request.quote(number.id))
    assert hostile in browser.find_element(By.ID, "results").text
    assert browser.execute_script("return window.pwned") is None
    assert not browser.find_elements(By.CSS_SELECTOR, "#content img, #content script")


def test_the_filter_finds_a_number_by_name_in_a_10000_number_fleet(
        browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    scenario = generate_scenario(businesses=10, wabas_per_business=10, numbers_per_waba=100,
                                 token=DEMO_TOKEN)
    assert sum(1 for _ in scenario.numbers()) == 10_000
    stack = start_stack(tmp_path, scenario, caps={b.id: 1000 for b in scenario.businesses},
                        demo=False)
    try:
        browser.get(stack.url + "/")
        assert len(browser.page_source.encode()) < 200_000
        box = browser.find_element(By.ID, "q")
        box.send_keys("synthetic line 7777")
        box.submit()
        wait_until(lambda: "results" in browser.current_url or
                   browser.find_elements(By.ID, "results"), 10, "no results")
        results = browser.find_element(By.ID, "results")
        assert results.find_element(By.TAG_NAME, "h2").text.startswith("Find a number: 1 match")
        rows = results.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 1 and "Synthetic Line 7777" in rows[0].text
        assert "+1 555-000-7777" in rows[0].text
        # A broad filter is paged on the server: 50 rows, not thousands.
        browser.get(stack.url + "/?q=synthetic")
        results = browser.find_element(By.ID, "results")
        assert results.find_element(By.TAG_NAME, "h2").text.startswith(
            "Find a number: 10,000 matches")
        assert len(results.find_elements(By.CSS_SELECTOR, "tbody tr")) == 50
        assert len(browser.page_source.encode()) < 200_000
    finally:
        stop_stack(stack)


def test_in_ci_a_missing_browser_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "none")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium-driver"):
        _driver()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"needs .*none"):
        _driver()
