"""The open page keeps itself current: a grid worker starts a shift and the secretary's Today shows
her on shift without a reload; the board follows a visit the same way."""

from __future__ import annotations

import httpx

from shared.auth import mint_token

from .conftest import Opener, Site

COMMUNITY = "bairuijing"


def worker_headers(site: Site, worker_id: str, grid_id: str) -> dict[str, str]:
    token = mint_token(site.settings, role="grid_worker", community=COMMUNITY, grid=grid_id, worker_id=worker_id)
    return {"Authorization": f"Bearer {token}"}


async def test_a_shift_started_on_the_phone_shows_on_today_without_a_reload(open_as: Opener, site: Site) -> None:
    worker = site.demo.plan.workers[-1]
    page = await open_as("shuji")
    await page.wait_for_function("document.body.dataset.live === 'open'")
    shift = page.locator("#shift")
    assert worker.name not in await shift.inner_text()
    await page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded
    async with httpx.AsyncClient(base_url=site.services["visits"], timeout=30) as client:
        started = await client.post(
            f"/v1/communities/{COMMUNITY}/shifts",
            headers=worker_headers(site, worker.worker_id, worker.grid_id),
            json={"shift_id": f"live-{worker.worker_id}"},
        )
        assert started.status_code in (200, 201), started.text
    await shift.get_by_text(worker.name).wait_for(timeout=10_000)
    assert await page.evaluate("window.__sameDocument === true")
    async with httpx.AsyncClient(base_url=site.services["visits"], timeout=30) as client:
        ended = await client.post(
            f"/v1/communities/{COMMUNITY}/shifts/live-{worker.worker_id}/end",
            headers=worker_headers(site, worker.worker_id, worker.grid_id),
            json={},
        )
        assert ended.status_code in (200, 201), ended.text
    await shift.get_by_text(worker.name).wait_for(state="detached", timeout=10_000)


async def test_a_form_without_its_csrf_token_is_refused_in_the_browser(open_as: Opener) -> None:
    page = await open_as("jiedao")
    # a forged form: the sign-out form posted without the session's token
    await page.evaluate("document.querySelector('form[action=\"/logout\"] input[name=csrf]').remove()")
    await page.get_by_role("button", name="退出登录").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "表单已失效" in await alert.inner_text()
    # the session was not ended by the forged form
    await page.goto("/board")
    assert "/login" not in page.url
