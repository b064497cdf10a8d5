"""A community is registered once, under its street; only operations moves it to another street,
with its own event (#13 item 1: a street admin could take over any community with a PUT)."""

from __future__ import annotations

from shared.events.visits import CommunityMoved
from shared.eventstore import EventStore, aggregate_filter, connect
from tests.harness import eventually
from tests.integration.visits.conftest import WAIT, C, Field

REGISTRATION = {"name": "百瑞景社区", "street": "zhongnanlu", "district": "wuchang"}


async def test_a_street_admin_cannot_take_over_a_community_and_ops_moves_it_on_the_record(field: Field) -> None:
    f = field
    zhongnanlu = f.token("street_admin", street="zhongnanlu")
    donghu = f.token("street_admin", street="donghu")
    # Another street cannot register it under its own street first.
    r = await f.client.put(f.url(), json={**REGISTRATION, "street": "zhongnanlu"}, headers=donghu)
    assert r.status_code == 403 and r.json()["error"]["field"] == "street"
    r = await f.client.put(f.url(), json=REGISTRATION, headers=zhongnanlu)
    assert r.status_code == 201, r.text

    # The "last wins" takeover of before: another street's admin re-registering it under theirs.
    r = await f.client.put(f.url(), json={**REGISTRATION, "street": "donghu"}, headers=donghu)
    assert r.status_code == 403 and r.json()["error"]["field"] == "community"
    # Its own street may correct its details, but not move it; neither may ops by a PUT.
    r = await f.client.put(f.url(), json={**REGISTRATION, "name": "百瑞景社区居委会"}, headers=zhongnanlu)
    assert r.status_code == 201, r.text
    for headers in (zhongnanlu, f.ops):
        r = await f.client.put(f.url(), json={**REGISTRATION, "street": "donghu"}, headers=headers)
        assert r.status_code == 409 and r.json()["error"]["field"] == "street", r.text

    async def summary_for(headers: dict[str, str]) -> int:
        return (await f.client.get(f.url(), headers=headers)).status_code

    async def sees(headers: dict[str, str]) -> bool:
        return await summary_for(headers) == 200

    await eventually(lambda: sees(zhongnanlu), timeout=WAIT, what="zhongnanlu sees its community")
    assert await summary_for(donghu) == 403

    # A street admin may not move it; ops moves it, with a reason, as its own event.
    move = {"street": "donghu", "reason": "the district redrew the street boundary"}
    r = await f.client.post(f.url("/street"), json=move, headers=zhongnanlu)
    assert r.status_code == 403
    r = await f.client.post(f.url("/street"), json=move, headers=f.token("ops", sub="ops-zhang"))
    assert r.status_code == 200 and r.json()["duplicate"] is False, r.text
    again = await f.client.post(f.url("/street"), json=move, headers=f.ops)
    assert again.status_code == 200 and again.json()["duplicate"] is True  # a retry moves nothing

    nc = await connect(f.settings, "tests-community-street")
    try:
        store = EventStore(nc, f.settings)
        stored = await store.read(aggregate_filter(store.ns, C, "visits", "community", C))
    finally:
        await nc.drain()
    moves = [s.event() for s in stored if s.event().type == "CommunityMoved"]
    assert len(moves) == 1 and isinstance(moves[0], CommunityMoved)
    moved = moves[0]
    assert (moved.actor, moved.data.from_street, moved.data.street) == ("ops-zhang", "zhongnanlu", "donghu")
    assert moved.data.name == "百瑞景社区居委会" and moved.data.reason == move["reason"]

    # The scope follows the move: the new street's admin is in, the old one is out.
    await eventually(lambda: sees(donghu), timeout=WAIT, what="donghu sees the moved community")
    assert await summary_for(zhongnanlu) == 403
    r = await f.client.put(f.url(), json={**REGISTRATION, "street": "donghu"}, headers=donghu)
    assert r.status_code in (200, 201), r.text  # its new street corrects it as its own


async def test_a_count_beyond_what_storage_holds_is_refused_before_it_is_stored(field: Field) -> None:
    """#15 item 6: residents 2,147,483,648 (an int32 column) was accepted, then stalled the
    directory's projection and was dead-lettered; a community answered 201 and then 404."""
    r = await field.client.put(field.url(), json={**REGISTRATION, "residents": 2**31}, headers=field.ops)
    assert r.status_code == 422 and r.json()["error"]["field"] == "residents", r.text
    r = await field.client.put(field.url(), json={**REGISTRATION, "residents": 25_799}, headers=field.ops)
    assert r.status_code == 201
