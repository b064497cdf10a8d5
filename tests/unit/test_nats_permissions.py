"""The NATS users of the compose cluster are rendered from deploy/nats/permissions.toml."""

from __future__ import annotations

from shared.nats.users import (
    PERMISSIONS_FILE,
    inbox_prefix,
    load_permissions,
    render_authorization,
)


def test_the_committed_compose_users_are_rendered_from_the_permissions_file() -> None:
    committed = (PERMISSIONS_FILE.parent / "auth.conf").read_text()
    body = "".join(line + "\n" for line in committed.splitlines() if not line.startswith("#"))
    assert body == render_authorization("gw")
    # passwords stay out of the repository: each is an environment reference
    assert "$NATS_NOTIFY_PASSWORD" in committed and 'password: "' not in committed


def test_each_service_user_holds_exactly_its_own_projections_consumers_and_dead_letters() -> None:
    from services.cli.catalog import SPECS

    users = load_permissions("gw")
    for spec in SPECS:
        user = users[spec.name]
        assert set(user.projections) == {p.name for p in spec.projections}, spec.name
        consumer_grants = [s for s in user.publish if s.startswith(("$JS.API.CONSUMER.", "$JS.ACK."))]
        for grant in consumer_grants:
            # every consumer grant names one of its own durables: no wildcard in the consumer's place
            assert any(f"GW_EVENTS.gw_{p}" in grant for p in user.projections), grant
        dead_letters = [s for s in user.publish if s.startswith("gwdlq.")]
        assert sorted(dead_letters) == sorted(f"gwdlq.{p}" for p in user.projections)
        assert "$JS.API.STREAM.MSG.GET.GW_DEADLETTER" not in user.publish  # reading them is the admin's
        # replies on its own inbox only; the console alone also hears events as they are stored
        # (its live pages), by a core subscription that reads nothing from the stream
        hears = ("gw.>",) if spec.name == "console" else ()
        assert user.subscribe == (f"{inbox_prefix(spec.name)}.>", *hears)
