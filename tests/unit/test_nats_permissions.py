"""The NATS users of the compose cluster are rendered from deploy/nats/permissions.toml."""

from __future__ import annotations

from shared.nats.users import (
    PERMISSIONS_FILE,
    render_authorization,
)


def test_the_committed_compose_users_are_rendered_from_the_permissions_file() -> None:
    committed = (PERMISSIONS_FILE.parent / "auth.conf").read_text()
    body = "".join(line + "\n" for line in committed.splitlines() if not line.startswith("#"))
    assert body == render_authorization("gw")
    # passwords stay out of the repository: each is an environment reference
    assert "$NATS_NOTIFY_PASSWORD" in committed and 'password: "' not in committed
