"""Fixtures for the issues service: its settings on the test stack, a running app, tokens, helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.issues.app import build_app
from services.issues.settings import HERE, IssuesSettings
from shared.events import Event
from shared.eventstore import EventStore, aggregate_filter, connect
from shared.settings import Settings
from tests.harness import auth, running

COMMUNITY = "bairuijing"


def make_settings(settings: Settings, **overrides: Any) -> IssuesSettings:
    """The issues settings on the test's database and namespace, with fast polling."""
    values: dict[str, Any] = {
        **settings.model_dump(),
        "issues_timer_poll_seconds": 0.1,
        "hotline_outbox_poll_seconds": 0.05,
        "hotline_retry_attempts": 2,
        "hotline_retry_wait_initial": 0.02,
        "hotline_retry_wait_max": 0.2,
        "hotline_callback_timeout_seconds": 2,
        "open311_api_keys": {"app-key-1": COMMUNITY},
    }
    values.update(overrides)
    return IssuesSettings(**values)


def policy_file(tmp_path: Path, deadlines: str) -> Path:
    """The default escalation rules with other deadlines (tests need seconds, not hours)."""
    text = (HERE / "escalation.toml").read_text()
    rules = text[: text.index("\n[[deadline]]")]  # keep the rules, drop the deadlines
    path = tmp_path / "escalation.toml"
    path.write_text(rules + deadlines)
    return path


@dataclass
class Service:
    """A running issues service: its HTTP client, the app (for its runtime) and tokens."""

    client: httpx.AsyncClient
    app: FastAPI
    settings: IssuesSettings

    @property
    def store(self) -> EventStore:
        return self.app.state.runtime.store

    def token(self, role: str = "grid_worker", **scope: Any) -> dict[str, str]:
        if role == "grid_worker":
            scope = {"community": COMMUNITY, "worker_id": "w07", "grid": "phase2-east", **scope}
        elif role in ("secretary", "agency") and "community" not in scope:
            scope = {"community": COMMUNITY, **scope}
        return auth(self.settings, role, **scope)

    async def events(self, issue_id: str, community: str = COMMUNITY) -> list[Event]:
        """The issue's stored events, their free text revealed from the vault (stored, they hold references)."""
        stored = await self.store.read(aggregate_filter(self.store.ns, community, "issues", "issue", issue_id))
        revealed: list[Event] = await self.app.state.runtime.deps.vault.reveal(community, [s.event() for s in stored])
        return revealed

    async def types(self, issue_id: str, community: str = COMMUNITY) -> list[str]:
        return [e.type for e in await self.events(issue_id, community)]

    async def report(self, *, expect: int = 201, headers: dict[str, str] | None = None, **body: Any) -> dict:
        body.setdefault("description", "a problem")
        r = await self.client.post(f"/v1/communities/{COMMUNITY}/issues", json=body, headers=headers or self.token())
        assert r.status_code == expect, r.text
        return r.json()

    async def act(
        self,
        issue_id: str,
        action: str,
        version: int,
        *,
        expect: int = 200,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> dict:
        r = await self.client.post(
            f"/v1/communities/{COMMUNITY}/issues/{issue_id}/{action}",
            json={"version": version, **body},
            headers=headers or self.token("secretary"),  # the community's casework, whatever the grid
        )
        assert r.status_code == expect, r.text
        return r.json()

    async def issue(self, issue_id: str) -> dict:
        r = await self.client.get(f"/v1/communities/{COMMUNITY}/issues/{issue_id}", headers=self.token("secretary"))
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def issues_settings(settings: Settings) -> IssuesSettings:
    return make_settings(settings)


@pytest.fixture
async def service(issues_settings: IssuesSettings) -> AsyncIterator[Service]:
    app = build_app(issues_settings)
    async with running(app) as client:
        yield Service(client, app, issues_settings)


@pytest.fixture
async def outside(settings: Settings) -> AsyncIterator[EventStore]:
    """An event store for what other contexts publish (visits, notify), connected as the tests' own
    code connects: the service's NATS user may only publish its own context's events."""
    nc = await connect(settings, "tests-issues-outside")
    try:
        yield EventStore(nc, settings)
    finally:
        await nc.drain()
