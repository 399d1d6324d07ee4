"""What the console tests do in a page: open one that may reach only the gateway, sign in, ask axe-core what is wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from playwright.async_api import Browser, Page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[1] / "gateway" / "console_vendor" / "axe.min.js"
POST_LAT, POST_LON = 30.2700, 120.1900
PASSWORD = "控制台-测试-口令-2026"

async def open_page(browser: Browser, gateway: str, *, width: int = 1280, height: int = 900) -> tuple[Page, list[str]]:
    """A fresh browser context whose requests anywhere but the gateway are refused (and recorded)."""
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    outside: list[str] = []

    async def only_the_gateway(route):
        if route.request.url.startswith(gateway):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_the_gateway)
    return await context.new_page(), outside


async def sign_in(page: Page, gateway: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{gateway}/console/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button.primary")


async def serious_accessibility_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page (injected from the vendored file)."""
    await page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']}: {v['help']}" for v in result["violations"] if v["impact"] in ("serious", "critical")]


def expect_list(html: str, prefix: str) -> set[str]:
    """The distinct links a page's list holds that start with `prefix`."""
    return set(re.findall(rf'href="({re.escape(prefix)}[^"/]+)"', html))
