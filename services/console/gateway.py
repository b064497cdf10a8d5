"""The console's calls to the four services, on the signed-in person's behalf.

Each call carries a short-lived token minted for that person — their role and scope, nothing
more — so every authorization decision stays in the service that owns the data: the console shows
what the service answers and never widens it.  Tokens live in memory only and never reach a page.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from shared.auth import Principal, mint_token

from .settings import ConsoleSettings

SERVICES = ("visits", "issues", "scoring", "notify")


class ApiError(Exception):
    """A service refused or failed a call: its status and its error body (``code``, ``message``, ``field``)."""

    def __init__(self, status: int, error: dict[str, Any], service: str) -> None:
        super().__init__(f"{service}: {status} {error.get('message', '')}")
        self.status = status
        self.error = error
        self.service = service

    @property
    def message(self) -> str:
        return str(self.error.get("message") or self.error.get("code") or self.status)

    @property
    def field(self) -> str | None:
        field = self.error.get("field")
        return str(field) if field else None


@dataclass(frozen=True)
class Answer:
    """A service's answer, read whole: its status, headers and body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def _error_of(response: Answer) -> dict[str, Any]:
    """The service's error (``{"error": {code, message, field}}``, every gridwork service's shape)."""
    try:
        body = response.json()
    except ValueError:
        return {"code": "error", "message": response.text[:200]}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {"code": "error", "message": str(body)[:200]}


@dataclass
class _Token:
    value: str
    expires: float


class Gateway:
    """An HTTP client per process to the four services, minting each person's token as needed.

    aiohttp, not httpx: a page makes several calls, and httpx's client cost most of the console's
    CPU per page under load (``gridwork bench console``)."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, _Token] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        # made on first use, inside the running loop (nothing connects at import or in bootstrap)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=15, connect=5),
                connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def token_for(self, who: Principal) -> str:
        """A token of ``who``'s own role and scope, reused until a minute before it expires."""
        key = who.model_dump_json()
        now = time.time()
        held = self._tokens.get(key)
        if held is None or held.expires - now < 60:
            ttl = self.settings.console_token_seconds
            value = mint_token(
                self.settings,
                role=who.role,
                sub=who.sub,
                community=who.community,
                street=who.street,
                grid=who.grid,
                worker_id=who.worker_id,
                agency=who.agency,
                agency_kind=who.agency_kind,
                ttl_seconds=ttl,
            )
            if len(self._tokens) > 10_000:
                self._tokens = {k: t for k, t in self._tokens.items() if t.expires > now}
            held = self._tokens[key] = _Token(value, now + ttl)
        return held.value

    async def raw(
        self,
        who: Principal,
        method: str,
        service: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """The service's answer as it came (an export's bytes); raises :class:`ApiError` on 4xx/5xx.
        ``files``: a multipart upload, field → (file name, bytes, content type)."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service}")
        url = self.settings.service_url(service) + path
        sent = {"Authorization": f"Bearer {self.token_for(who)}", **(headers or {})}
        data: aiohttp.FormData | None = None
        if files:
            data = aiohttp.FormData()
            for field, (name, content, content_type) in files.items():
                data.add_field(field, content, filename=name, content_type=content_type)
        query = [
            (k, str(item).lower() if isinstance(item, bool) else str(item))
            for k, v in (params or {}).items()
            for item in (v if isinstance(v, list | tuple) else [v])
        ]
        try:
            async with self.session.request(
                method, url, headers=sent, params=query, json=json if data is None else None, data=data
            ) as response:
                answer = Answer(response.status, dict(response.headers), await response.read())
        except (aiohttp.ClientError, TimeoutError) as err:
            unavailable = {"code": "unavailable", "message": f"the {service} service did not answer"}
            raise ApiError(503, unavailable, service) from err
        if answer.status_code >= 400:
            raise ApiError(answer.status_code, _error_of(answer), service)
        return answer

    async def get(self, who: Principal, service: str, path: str, **params: Any) -> Any:
        """GET a service's JSON (None-valued parameters are left out)."""
        clean = {k: v for k, v in params.items() if v is not None and v != ""}
        return (await self.raw(who, "GET", service, path, params=clean)).json()

    async def send(self, who: Principal, method: str, service: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """A write with a JSON body; the service's JSON answer (None for an empty one)."""
        response = await self.raw(who, method, service, path, json=body, **kwargs)
        return response.json() if response.content else None

    async def ready(self, service: str) -> dict[str, Any]:
        """The service's ``/readyz`` (no token: it is public)."""
        async with self.session.get(self.settings.service_url(service) + "/readyz") as response:
            body: dict[str, Any] = await response.json(content_type=None)
        return body
