"""The console in a real browser: headless Chromium (Debian's, driven by Playwright) against a real
`gridwork up` — five service processes on the session's NATS and PostgreSQL — seeded by the demo
(a few days of Bairuijing, its four cases) and holding the demo's accounts.

One site serves the whole package (starting it costs half a minute; it stops when the package's
tests are done, so its five processes and their database connections are gone before the other
stacks of the e2e tier start); tests change different things
in it (each works its own problem, household or account).  Without Chromium the tests skip and say
why.  A failing test leaves a screenshot of each page it opened (the path is printed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.cli.demo import Demo, demo_environment, demo_receiver, demo_window
from services.cli.demo.accounts import DemoAccount
from services.cli.embedded import free_port
from services.cli.stack import SERVICE_NAMES, LocalStack
from shared.events import now
from shared.settings import Settings
from tests.harness import Stack, fresh_settings

CHROMIUM = os.environ.get("GRIDWORK_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
DESKTOP = {"width": 1280, "height": 900}
TILE_URL = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    """The running console and what the demo put behind it."""

    url: str
    services: dict[str, str]
    settings: Settings
    demo: Demo
    accounts: dict[str, DemoAccount]

    def password(self, username: str) -> str:
        return self.accounts[username].password


@pytest.fixture(scope="package")
async def site(stack: Stack) -> AsyncIterator[Site]:
    """`gridwork up` on the session's servers, seeded by a short demo, with its accounts."""
    settings = await fresh_settings(stack)
    port = free_port()
    saved = dict(os.environ)
    os.environ.update(demo_environment(port))
    # every browser signs in from 127.0.0.1: the per-address limit (10 a minute, tested in
    # tests/integration/console) would refuse a whole package's sign-ins
    os.environ["GRIDWORK_CONSOLE_SIGN_INS_PER_MINUTE"] = "10000"
    # a tile server on a closed loopback port: the map draws its tiles and pins, no image loads
    os.environ["GRIDWORK_CONSOLE_TILE_URL"] = TILE_URL
    local = LocalStack(settings.model_copy(update={f"{name}_port": free_port() for name in SERVICE_NAMES}))
    receiver = demo_receiver(port)
    await receiver.start()
    try:
        endpoints = await asyncio.to_thread(local.start, lambda _line: None)
        demo = Demo(
            local.settings, endpoints["services"], receiver, demo_window(5, now().date()), households=600, seed=5
        )
        try:
            await demo.run()
        finally:
            await demo.close()
        yield Site(
            url=endpoints["services"]["console"],
            services=endpoints["services"],
            settings=local.settings,
            demo=demo,
            accounts={a.username: a for a in demo.accounts},
        )
    finally:
        await receiver.stop()
        await asyncio.to_thread(local.stop, lambda _line: None)
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's package: Playwright cannot download its own build here)."""
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk): browser tests skipped")
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    try:
        yield chromium
    finally:
        await chromium.close()
        await playwright.stop()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


Opener = Callable[..., Awaitable[Any]]


@pytest.fixture
async def open_as(
    browser: Any, site: Site, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Opener]:
    """``page = await open_as("shuji")``: a new browser context signed in through the form as that
    demo account (``viewport=PHONE`` for a phone; ``username=None``: not signed in)."""
    contexts: list[Any] = []

    async def opener(username: str | None, *, viewport: dict[str, int] = DESKTOP, lang: str | None = None) -> Any:
        context = await browser.new_context(viewport=viewport, base_url=site.url, locale="zh-CN")
        contexts.append(context)
        if lang:
            await context.add_cookies([{"name": "gw_lang", "value": lang, "url": site.url}])
        page = await context.new_page()
        if username is not None:
            await sign_in(page, username, site.password(username))
        return page

    yield opener
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        folder = tmp_path_factory.getbasetemp() / "console-failures"
        folder.mkdir(exist_ok=True)
        for i, context in enumerate(contexts):
            for j, page in enumerate(context.pages):
                path = folder / f"{request.node.name}-{i}-{j}.png"
                try:
                    await page.screenshot(path=str(path), full_page=True)
                    print(f"screenshot of the failing page: {path}")
                except Exception as err:  # a page already closed: nothing to show
                    print(f"no screenshot of page {i}-{j}: {err}")
    for context in contexts:
        await context.close()


async def sign_in(page: Any, username: str, password: str) -> None:
    """Fill in the sign-in form by its labels, as a person does."""
    await page.goto("/login")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(password)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_load_state()


async def has_no_horizontal_scroll(page: Any) -> bool:
    """Whether the page fits its viewport's width (no sideways scrolling)."""
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
