"""``/live``: the server-sent event stream that keeps an open page current (see :mod:`..live`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from sse_starlette.sse import EventSourceResponse

from shared.auth import Principal

from ..bootstrap import deps
from ..gateway import ApiError, Gateway
from .guard import signed_in
from .sessions import Person

router = APIRouter(include_in_schema=False)


async def coverage(principal: Principal, gateway: Gateway) -> Callable[[str], bool]:
    """Which communities' changes this person's pages hear of: the scope of their role."""
    if principal.role == "ops" or (principal.role == "hotline" and principal.community is None):
        return lambda _community: True
    if principal.role == "street_admin" and principal.street:
        try:
            board = await gateway.get(principal, "scoring", f"/v1/streets/{principal.street}/board")
            communities = {c["community"] for c in board.get("communities", [])}
        except ApiError:
            communities = set()
        return communities.__contains__
    own = principal.community
    return lambda community: community == own


@router.get("/live")
async def live(request: Request, person: Person = Depends(signed_in())) -> EventSourceResponse:
    d = deps(request)
    covers = await coverage(person.principal, d.gateway)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        async with d.hub.listen(covers) as listener:
            yield {"event": "ready", "data": "1"}
            while True:
                for topic in await listener.next():
                    yield {"event": "changed", "data": topic}

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
