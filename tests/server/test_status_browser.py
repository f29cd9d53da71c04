"""The status page in a real headless browser (the system's Chromium, driven by Playwright),
served by a real `turnout serve` in front of fake OpenAI upstreams.

The browser signs in through the page's form, sees the deployments, and then, without reloading,
sees a deployment that starts failing turn degraded or ejected as the live updates arrive. The
charts must be drawn (uPlot ran under the page's Content-Security-Policy) and the browser must
report no error (a CSP violation included). A screenshot is kept in ``TURNOUT_TEST_ARTIFACTS``
(default: the test's temporary directory); its path is printed.

Chromium is Debian's ``chromium`` package (`.ci/run` installs it); without it, or without
Playwright, the test skips, and fails under ``TURNOUT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import openai

from fakes.fake_openai import FakeOpenAI, Fault
from serve_process import serving
from services import missing_service

MASTER = "sk-master-browser-0123456789"
MESSAGES: Any = [{"role": "user", "content": "Hello"}]
CHROMIUM = ("chromium", "chromium-browser")


def _chromium() -> str:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found is not None:
            return found
    missing_service("Chromium is not installed (Debian package chromium)")
    raise AssertionError("unreachable")


def _config(path: Path, main: str, spare: str) -> Path:
    deployments = "".join(
        f"""
  - model_name: chat
    name: {name}
    provider: openai-compatible
    model: gpt-4o-mini
    base_url: {url}
    api_key: sk-fake
    priority: {priority}
"""
        for priority, (name, url) in enumerate((("main-east", main), ("spare-west", spare)))
    )
    path.write_text(
        f"server:\n  master_key: {MASTER}\n  shutdown_timeout: 5\n"
        f"routing:\n  strategy: priority\nmodel_list:{deployments}"
    )
    return path


def _artifacts(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("TURNOUT_TEST_ARTIFACTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def test_the_page_goes_live_and_shows_a_deployment_start_failing(tmp_path: Path) -> None:
    executable = _chromium()
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        missing_service("Playwright for Python is not installed (the test extra has it)")
        raise
    async with FakeOpenAI() as main, FakeOpenAI() as spare:
        config = _config(tmp_path / "turnout.yaml", main.url, spare.url)
        async with (
            serving("--config", str(config), "--port", "0") as (process, port, lines),
            async_playwright() as playwright,
        ):
            base = f"http://127.0.0.1:{port}"
            browser = await playwright.chromium.launch(executable_path=executable)
            try:
                page = await browser.new_page(viewport={"width": 1500, "height": 1100})
                problems: list[str] = []
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type == "error" else None,
                )
                page.on("pageerror", lambda error: problems.append(str(error)))

                # Signed out: the form. A wrong key gets the form again with an error.
                await page.goto(f"{base}/status")
                await page.fill("#key", "sk-not-the-key")
                await page.click("button[type=submit]")
                await expect(page.locator(".error")).to_contain_text("not the master key")
                await page.fill("#key", MASTER)
                await page.click("button[type=submit]")
                rows = page.locator("#deployments tbody tr")
                await expect(rows).to_have_count(2)
                # The form's own 401 answers were expected; from here on nothing may fail.
                problems.clear()
                await expect(page.locator("#live")).to_have_text("live", timeout=15_000)
                east = page.locator("#deployments tbody tr", has_text="main-east")
                await expect(east.locator(".state")).to_have_text("healthy")
                # A mark that a reload would wipe: the updates below must arrive live.
                await page.evaluate("window.turnoutTestMark = 'kept'")

                async with openai.AsyncOpenAI(
                    base_url=f"{base}/v1", api_key=MASTER, timeout=10, max_retries=0
                ) as client:
                    for _ in range(3):
                        await client.chat.completions.create(model="chat", messages=MESSAGES)
                    main.set_default(Fault.server_error())
                    for _ in range(8):
                        answer = await client.chat.completions.create(
                            model="chat", messages=MESSAGES
                        )
                        assert answer.choices  # the spare answers every one

                await expect(east.locator(".state")).to_have_text(
                    re.compile(r"degraded|breaker open|cooling down|probing"), timeout=15_000
                )
                await expect(east).to_contain_text("server_error 500", timeout=15_000)
                await expect(page.locator("#failovers")).to_contain_text("spare-west")
                await expect(page.locator("#chart-requests canvas")).to_have_count(1)
                await expect(page.locator("#chart-latency canvas")).to_have_count(1)
                assert await page.evaluate("window.turnoutTestMark") == "kept"
                assert MASTER not in await page.content()
                cookies = await page.context.cookies()
                assert all(MASTER not in cookie["value"] for cookie in cookies)
                assert any(cookie["httpOnly"] for cookie in cookies)

                shot = _artifacts(tmp_path) / "status-page.png"
                await page.screenshot(path=str(shot), full_page=True)
                print(f"status page screenshot: {shot}")
                assert shot.stat().st_size > 10_000
                assert problems == [], problems
            finally:
                await browser.close()
                process.send_signal(signal.SIGTERM)
        assert "Traceback" not in "".join(lines)
