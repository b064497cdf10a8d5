"""Settings of the local stack: what ``gridwork up`` left in the data directory (endpoints, the
JWT secret, the KEK, the NATS users' passwords), so local commands need no environment to find it."""

from __future__ import annotations

import base64
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
    So does the KEK, but only for the local stack's own database: a command pointed at another
    database (``GRIDWORK_DATABASE_URL``) must be given that deployment's KEK.
    """
    settings = Settings(**overrides)  # type: ignore[arg-type]
    local_database = not settings.database_url
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
    if local_database and not settings.kek and not settings.kek_file:
        settings = settings.model_copy(update={"kek_file": local_kek_file(settings.data_dir)})
    return settings


def local_jwt_secret(data_dir: Path) -> str:
    """The embedded stack's signing secret, created on first use under the data directory."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32))
    return path.read_text().strip()


def local_kek_file(data_dir: Path) -> Path:
    """The embedded stack's key-encryption key (32 random bytes, base64), created on first use
    under the data directory, owner-only from its first byte; the visits service reads it."""
    path = data_dir / "kek"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        write_private(path, base64.b64encode(secrets.token_bytes(32)).decode())
    return path.resolve()
