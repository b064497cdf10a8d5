"""How a page knows who is asking: the one dependency every console page uses.

``signed_in(*roles)`` finds the session (no session: to the sign-in form, coming back here after),
sends a person still holding a one-time password to choose their own, and refuses a role the page
is not for.  The page then calls the services as that person; the services decide the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from ..bootstrap import deps
from .sessions import NotSignedIn, PasswordChangeDue, Person, RoleRefused, login_target


def signed_in(*roles: str, allow_password_change: bool = False) -> Callable[[Request], Awaitable[Person]]:
    """A dependency: the signed-in person, of one of ``roles`` (none given: any role)."""

    async def dependency(request: Request) -> Person:
        person = await deps(request).sessions.person(request)
        if person is None:
            raise NotSignedIn(login_target(request))
        if person.must_change and not allow_password_change:
            raise PasswordChangeDue()
        if roles and person.role not in roles:
            raise RoleRefused()
        return person

    return dependency
