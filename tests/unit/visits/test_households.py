"""The household ledger (居民基础信息底册) and the directory, decided without I/O: Wang Xiuying's entry
registered once, completed, tagged, and erased under PIPL; grids drawn and redrawn."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from services.visits.domain.definitions import DefineEntry, Definition, decide_definition, evolve_definition
from services.visits.domain.households import (
    AlreadyRegistered,
    DataErased,
    EraseResidentData,
    HouseholdState,
    RegisterHousehold,
    TagHousehold,
    UpdateHouseholdProfile,
    decide_erasure,
    decide_profile_update,
    decide_registration,
    decide_tagging,
    evolve_household,
    ledger_missing,
    may_read_personal,
)
from shared.errors import Invalid
from shared.events import SHANGHAI, Event
from shared.events.visits import GridDefinedData

C = "bairuijing"
AT = datetime(2025, 4, 14, 10, 0, tzinfo=SHANGHAI)
HID = "h-p4-b4-2-301"
SEALED = {"name": "c2VhbGVk", "phone": "c2VhbGVk"}  # ciphertext: the domain never sees a value


def fold(state: HouseholdState, events: list[Event]) -> HouseholdState:
    for e in events:
        state = evolve_household(state, e)
    return state


def wang(**extra: Any) -> RegisterHousehold:
    fields: dict[str, Any] = {
        "community": C,
        "household_id": HID,
        "building_id": "p4-b4",
        "unit": "2",
        "room": "301",
        "members": 1,
        "tags": ("elderly_alone",),
        "personal": {"name": "王秀英", "phone": "13907110000"},
        "at": AT,
        **extra,
    }
    return RegisterHousehold(**fields)


def registered() -> HouseholdState:
    cmd = wang()
    events = decide_registration(
        HouseholdState(),
        cmd,
        actor="sec-liu",
        grid_id="g-p4-east",
        tags=list(cmd.tags),
        sealed=SEALED,
        stored_personal=None,
    )
    return fold(HouseholdState(), events)


def test_a_household_enters_the_ledger_once_with_its_personal_fields_sealed() -> None:
    state = registered()
    assert state.registered and state.grid_id == "g-p4-east" and state.sealed == SEALED
    assert state.fields_present == ["name", "phone", "members"]
    assert ledger_missing(state.fields_present) == ["id_number", "address"]

    # The same registration again changes nothing; a different one for the same id is refused.
    same = dict(wang().personal)
    assert (
        decide_registration(
            state, wang(), actor="sec-liu", grid_id="g-p4-east", tags=["elderly_alone"], sealed={}, stored_personal=same
        )
        == []
    )
    with pytest.raises(AlreadyRegistered):
        decide_registration(
            state,
            wang(room="302"),
            actor="sec-liu",
            grid_id="g-p4-east",
            tags=["elderly_alone"],
            sealed={},
            stored_personal=same,
        )


def test_the_ledger_entry_is_completed_and_a_retried_update_changes_nothing() -> None:
    state = registered()
    update = UpdateHouseholdProfile(community=C, household_id=HID, members=2, at=AT)
    events = decide_profile_update(state, update, actor="sec-liu", sealed={"id_number": "c2VhbGVk", "address": "YQ"})
    state = fold(state, events)
    assert ledger_missing(state.fields_present) == [] and state.members == 2
    assert decide_profile_update(state, update, actor="sec-liu", sealed={}) == []
    # A field no longer held is cleared from the ledger.
    cleared = decide_profile_update(
        state,
        UpdateHouseholdProfile(community=C, household_id=HID, clear=("phone",), at=AT),
        actor="sec-liu",
        sealed={},
    )
    assert ledger_missing(fold(state, cleared).fields_present) == ["phone"]


def test_special_assistance_is_tagged_and_a_tag_already_there_changes_nothing() -> None:
    state = registered()
    tag = TagHousehold(community=C, household_id=HID, add=("special_assistance",), remove=("elderly_alone",), at=AT)
    state = fold(state, decide_tagging(state, tag, actor="w-07"))
    assert state.tags == ["special_assistance"]
    assert decide_tagging(state, tag, actor="w-07") == []
    with pytest.raises(Invalid) as bad:
        decide_tagging(state, TagHousehold(community=C, household_id=HID, add=("独居",), at=AT), actor="w-07")
    assert bad.value.field == "add[0]"


def test_pipl_erasure_happens_once_and_personal_data_never_comes_back() -> None:
    state = registered()
    erase = EraseResidentData(community=C, household_id=HID, reason="resident moved away", at=AT)
    state = fold(state, decide_erasure(state, erase, actor="sec-liu"))
    assert state.erased and state.sealed == {} and state.fields_present == ["members"]
    assert decide_erasure(state, erase, actor="sec-liu") == []
    with pytest.raises(DataErased):
        decide_profile_update(
            state,
            UpdateHouseholdProfile(community=C, household_id=HID, personal={"name": "王秀英"}, at=AT),
            actor="sec-liu",
            sealed={"name": ""},
        )
    assert ledger_missing(state.fields_present, erased=True) == ["name", "phone", "id_number", "address"]


def test_the_owning_grid_worker_reads_personal_fields_unaudited_a_secretary_audited() -> None:
    assert may_read_personal("grid_worker", "g-p4-east", "g-p4-east") == (True, False)
    assert may_read_personal("grid_worker", "g-p2-east", "g-p4-east") == (False, False)
    assert may_read_personal("secretary", None, "g-p4-east") == (True, True)
    assert may_read_personal("ops", None, "g-p4-east") == (False, False)


def test_a_grid_is_drawn_once_and_redrawn_when_its_buildings_change() -> None:
    def grid(*buildings: str) -> DefineEntry:
        data = GridDefinedData(grid_id="g-p4-east", name="四期东网格", worker_id="w-07", buildings=list(buildings))
        return DefineEntry(community=C, entry_id="g-p4-east", data=data, at=AT)

    (drawn,) = decide_definition(Definition(), grid("p4-b4"), actor="sec-liu")
    assert drawn.type == "GridDefined" and grid("p4-b4").kind == "grid"
    state = evolve_definition(Definition(), drawn)
    assert decide_definition(state, grid("p4-b4"), actor="sec-liu") == []
    assert [e.type for e in decide_definition(state, grid("p4-b4", "p4-b5"), actor="sec-liu")] == ["GridDefined"]
