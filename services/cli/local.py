"""Settings of the local stack: what ``gridwork up`` left in the data directory (endpoints, the
JWT secret, the NATS users' passwords), so local commands need no environment to find it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from shared.settings import Settings

from .embedded import write_private


def load_settings(*, use_running_stack: bool = True, **overrides: object) -> Settings:
    """Settings from the environment.

    Unset server URLs fall back to the ``endpoints.json`` of a stack ``gridwork up`` runs in the data
    dir, and the JWT secret to the data dir's (created on first use), so local commands just work.
    """
    settings = Settings(**overrides)  # type: ignore[arg-type]
    endpoints = settings.data_dir / "endpoints.json"
    if (not settings.nats_url or not settings.database_url) and endpoints.exists() and use_running_stack:
        # A stack started by `gridwork up` in this data dir: talk to its servers.
        known = json.loads(endpoints.read_text())
        update: dict[str, Any] = {
            "nats_url": settings.nats_url or known.get("nats"),
            "database_url": settings.database_url or known.get("database"),
        }
        passwords = known.get("nats_passwords_file")
        if not settings.nats_url and passwords and not settings.nats_user and Path(passwords).exists():
            # its NATS users' passwords (0600, ours): local tools log in as admin by default
            update["nats_passwords"] = json.loads(Path(passwords).read_text())
        settings = settings.model_copy(update=update)
    if not settings.jwt_secret:
        settings = settings.model_copy(update={"jwt_secret": local_jwt_secret(settings.data_dir)})
    return settings


def local_jwt_secret(data_dir: Path) -> str:
    """The embedded stack's signing secret, created on first use under the data directory."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32))
    return path.read_text().strip()
