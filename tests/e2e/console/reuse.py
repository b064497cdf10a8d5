"""Signed-in pages that reuse one sign-in per account for the session.

The console rate-limits sign-ins per client address (``console_sign_ins_per_minute``, 10 by
default) and every browser test signs in from 127.0.0.1: a file that opened a fresh sign-in for
each page would run into the limit, and so would the tests run after it.  ``reuse(open_as, …)``
signs an account in once through the form (``open_as``) and opens every later page in a new
browser context holding that session's cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .conftest import DESKTOP, Opener, Site

_SIGNED: dict[tuple[str, str], Any] = {}


async def pages(open_as: Opener, browser: Any, site: Site) -> AsyncIterator[Opener]:
    """The body of a fixture: ``page = await opener(username, viewport=…)``."""
    contexts: list[Any] = []

    async def opener(username: str, *, viewport: dict[str, int] = DESKTOP) -> Any:
        key = (site.url, username)
        if key not in _SIGNED:
            page = await open_as(username, viewport=viewport)
            assert "/login" not in page.url, f"{username} could not sign in"
            _SIGNED[key] = await page.context.storage_state()
            return page
        context = await browser.new_context(
            viewport=viewport, base_url=site.url, locale="zh-CN", storage_state=_SIGNED[key]
        )
        contexts.append(context)
        return await context.new_page()

    yield opener
    for context in contexts:
        await context.close()
