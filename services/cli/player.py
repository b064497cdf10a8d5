"""A client of the running services' public HTTP APIs, as the demo and ``gridwork simulate --via api`` use it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import stamina

from shared.auth import mint_token
from shared.settings import Settings


class Unavailable(Exception):
    """A 503: the service asks to be called again (after ``retry_after`` seconds)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.request.method} {response.request.url} → 503")
        self.response = response
        try:
            self.retry_after = float(response.headers.get("retry-after") or 1)
        except ValueError:
            self.retry_after = 1.0


def _resend_after(err: BaseException) -> bool | float:
    """stamina's hook: resend after a transport failure (its backoff) or a 503 (its Retry-After, at most 5 s)."""
    if isinstance(err, Unavailable):
        return min(5.0, err.retry_after)
    return isinstance(err, httpx.TransportError)


class ApiPlayer:
    """A client of the running services' public HTTP APIs, as the demo and ``gridwork simulate --via api``
    use them: tokens minted with the stack's secret, calls that fail loudly, waiting for the
    projections to catch up, and issue lifecycle steps that survive a rule or timer moving the issue."""

    def __init__(
        self, settings: Settings, services: dict[str, str], community: str = "bairuijing", connections: int = 32
    ) -> None:
        self.settings = settings
        self.urls = services
        self.community = community
        self.http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=connections))

    def token(self, role: str, **scope: Any) -> dict[str, str]:
        """An Authorization header for ``role``; community roles default to the player's community."""
        if role in ("secretary", "grid_worker", "agency") and "community" not in scope:
            scope["community"] = self.community
        token = mint_token(self.settings, role=role, **scope)
        return {"Authorization": f"Bearer {token}"}

    #: Every write the player sends is idempotent (client ids, issue ids, order ids, PUTs), so a request
    #: whose answer was lost — a dropped connection, a 503 with Retry-After while the broker elects a
    #: leader — is sent again, as a field app resends; at most this many times.
    RESENDS = 5

    async def send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request, resent (stamina) after a transport failure or a 503, honouring its Retry-After;
        after the last resend a 503 is returned as it came."""
        try:
            async for attempt in stamina.retry_context(
                on=_resend_after, attempts=self.RESENDS + 1, timeout=None, wait_initial=0.1, wait_max=2.0
            ):
                with attempt:
                    r = await self.http.request(method, url, **kw)
                    if r.status_code == 503:
                        raise Unavailable(r)
        except Unavailable as err:
            return err.response
        return r

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200, 201),
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Any:
        r = await self.send(method, self.urls[service] + path, headers=headers, **kw)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {service}{path} → {r.status_code}: {r.text[:500]}")
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r

    async def wait(self, check: Any, what: str, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = await check()
            if got:
                return got
            await asyncio.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}")

    async def settle(self, timeout: float = 300) -> None:
        """Wait until every service's projections have folded everything and every outbox (notify's
        deliveries, the hotline's feedback) has delivered or given up what it owes now.

        Settled means two readings in a row with nothing owed and no projection moved between them:
        a reaction folded in one service may append an event that another service then owes."""
        last: list[Any] = []

        async def reading() -> list[Any] | None:
            seen: list[Any] = []
            for name, url in sorted(self.urls.items()):
                r = await self.http.get(f"{url}/readyz")
                body = r.json()
                if r.status_code != 200:
                    return None
                for p in body.get("projections", []):
                    if "error" in p or p.get("lag_events", 0):
                        return None
                    seen.append((name, p["projection"], p["checkpoint"]))
                for o in body.get("outboxes", []):
                    if "error" in o or o.get("pending", 0):
                        return None
            return seen

        async def quiet() -> bool:
            nonlocal last
            now_seen = await reading()
            settled = now_seen is not None and now_seen == last
            last = now_seen or []
            return settled

        await self.wait(quiet, "projections and outboxes to settle", timeout=timeout)

    async def advance(
        self,
        issue: str,
        action: str,
        headers: dict[str, str],
        version: int,
        *,
        community: str | None = None,
        **body: Any,
    ) -> int:
        """One lifecycle step; when a rule or a timer moved the issue meanwhile (409), re-read and retry."""
        path = f"/v1/communities/{community or self.community}/issues/{issue}"
        for _attempt in range(10):
            r = await self.send(
                "POST", f"{self.urls['issues']}{path}/{action}", headers=headers, json={"version": version, **body}
            )
            if r.status_code in (200, 201):
                return int(r.json()["version"])
            if r.status_code != 409 or r.json()["error"].get("code") == "illegal_transition":
                raise RuntimeError(f"{action} {issue} → {r.status_code}: {r.text[:300]}")
            version = (await self.call("GET", "issues", path, headers=headers))["issue"]["version"]
        raise RuntimeError(f"{action} {issue}: the version kept moving")

    async def close(self) -> None:
        await self.http.aclose()
