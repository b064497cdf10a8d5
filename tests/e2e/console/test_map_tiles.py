"""With a tile server configured and buildings that have coordinates, the map pins each building
on the real map, coloured as on the plan, each pin a link to its households."""

from __future__ import annotations

import httpx

from shared.auth import mint_token

from .conftest import PHONE, Opener, Site, has_no_horizontal_scroll

COMMUNITY = "bairuijing"


async def test_buildings_with_coordinates_are_pinned_on_the_tiled_map(open_as: Opener, site: Site) -> None:
    token = mint_token(site.settings, role="secretary", community=COMMUNITY)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=site.services["visits"], headers=headers, timeout=30) as visits:
        buildings = (await visits.get(f"/v1/communities/{COMMUNITY}/buildings")).json()
        chosen = buildings[:2]
        for i, b in enumerate(chosen):  # two buildings of Bairuijing surveyed: 100 m apart
            body = {k: b[k] for k in ("number", "grid_id", "units", "compound", "phase") if b.get(k) is not None}
            body.update(lat=30.5200 + i * 0.0008, lon=114.3300 + i * 0.0008)
            answer = await visits.put(f"/v1/communities/{COMMUNITY}/buildings/{b['building_id']}", json=body)
            assert answer.status_code in (200, 201), answer.text

        async def placed() -> bool:
            rows = (await visits.get(f"/v1/communities/{COMMUNITY}/buildings")).json()
            return sum(1 for r in rows if r.get("lat") is not None) >= 2

        from tests.harness import eventually

        await eventually(placed, what="the coordinates folded")
    page = await open_as("shuji")
    await page.goto("/map")
    tiled = page.get_by_role("group", name="瓦片地图")
    await tiled.wait_for()
    tiles = await tiled.locator("img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert len(tiles) == 9 and all(t.startswith("http://127.0.0.1:9/tiles/") for t in tiles)
    pins = tiled.get_by_role("link")
    assert await pins.count() == 2
    ids = await pins.evaluate_all("pins => pins.map(p => p.dataset.building)")
    assert ids == [b["building_id"] for b in chosen]
    first = pins.first
    assert "building=" in (await first.get_attribute("href") or "")
    phone = await open_as("shuji", viewport=PHONE)
    await phone.goto("/map")
    await phone.get_by_role("group", name="瓦片地图").wait_for()
    assert await has_no_horizontal_scroll(phone)
