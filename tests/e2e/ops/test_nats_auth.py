"""NATS security on a real nats-server: TLS, one user per service, permissions from one TOML file.

A grid worker's visit is written by the visits service's user; the notify service's user is
refused when it tries to write a visits event, and nobody but the admin may touch the streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from services.cli.embedded import NatsNode, free_port
from shared.db import migrate
from shared.events import Event
from shared.events.notify import NotificationData, NotificationSent
from shared.events.visits import HouseholdTagged, HouseholdTaggedData
from shared.eventstore import Aggregate, EventStore, StoredEvent, aggregate_filter, connect
from shared.nats.users import (
    inbox_prefix,
    load_permissions,
    nats_url_for,
    new_passwords,
    render_authorization,
    tls_trust,
    write_dev_certificates,
)
from shared.projection import ProjectionRunner, dead_letters
from shared.settings import Settings
from tests.harness import eventually

COMMUNITY = "bairuijing"


@dataclass
class SecuredNats:
    node: NatsNode
    passwords: dict[str, str]
    ca: Path

    async def connect(self, user: str, password: str | None = None, errors: list[str] | None = None) -> NATS:
        """Connect the way a service does: credentials in GRIDWORK_NATS_URL, the cluster's CA for TLS."""

        async def on_error(err: Exception) -> None:
            if errors is not None:
                errors.append(str(err))

        url = nats_url_for(user, password or self.passwords[user], [self.node.url])
        return await nats.connect(
            servers=url.split(","),
            tls=tls_trust(self.ca),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=5,
            inbox_prefix=inbox_prefix(user),
        )


@pytest.fixture
def secured(settings: Settings, tmp_path: Path) -> Iterator[SecuredNats]:
    certs = write_dev_certificates(tmp_path / "certs", ["127.0.0.1", "localhost"])
    passwords = new_passwords(load_permissions(settings.namespace))
    node = NatsNode(
        data_dir=tmp_path / "nats",
        port=free_port(),
        monitor_port=free_port(),
        server_name="secured",
        authorization=render_authorization(settings.namespace, passwords),
        tls=certs,
    ).start()
    try:
        yield SecuredNats(node, passwords, certs.ca)
    finally:
        node.stop()


@pytest.fixture
async def admin(secured: SecuredNats, settings: Settings) -> AsyncIterator[EventStore]:
    """The migration job's view: the admin creates the streams before any service starts."""
    nc = await secured.connect("admin")
    store = EventStore(nc, settings)
    await store.ensure_streams()
    yield store
    await nc.close()


def tagged(household: str, *tags: str) -> HouseholdTagged:
    return HouseholdTagged.new(
        community=COMMUNITY,
        aggregate_id=household,
        actor="w07",
        data=HouseholdTaggedData(household_id=household, tags=list(tags)),
    )


class Tags(BaseModel):
    tags: list[str] = []


def _evolve(state: Tags, event: Event) -> Tags:
    assert isinstance(event, HouseholdTagged)
    return Tags(tags=[*state.tags, *event.data.tags])


HOUSEHOLD = Aggregate("visits", "household", Tags, _evolve, Tags)


async def test_the_visits_user_appends_its_events_and_snapshots_over_tls(
    secured: SecuredNats, admin: EventStore, settings: Settings
) -> None:
    nc = await secured.connect("visits")
    store = EventStore(nc, settings.model_copy(update={"snapshot_every": 2}))
    try:
        first = await store.append([tagged("h-2-1-502", "elderly_alone")], 0)
        # several events of one aggregate go as one atomic batch
        batch = await store.append([tagged("h-2-1-502", "special_assistance"), tagged("h-2-1-502", "priority")], 1)
        assert (first.version, batch.version, batch.duplicate) == (1, 3, False)
        loaded = await store.load(HOUSEHOLD, COMMUNITY, "h-2-1-502")  # writes a snapshot (KV put)
        again = await store.load(HOUSEHOLD, COMMUNITY, "h-2-1-502")  # starts from it (KV get)
        assert loaded.state.tags == again.state.tags == ["elderly_alone", "special_assistance", "priority"]
        assert again.version == 3
    finally:
        await nc.close()


async def test_notify_cannot_write_a_visits_event_but_can_write_its_own(
    secured: SecuredNats, admin: EventStore, settings: Settings
) -> None:
    errors: list[str] = []
    nc = await secured.connect("notify", errors=errors)
    store = EventStore(nc, settings)
    try:
        forged = tagged("h-4-4-301", "special_assistance")
        # the server drops the publish and tells the client; no ack ever comes
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.append([forged], 0), 3)
        violation = f'permissions violation for publish to "{forged.subject(settings.namespace)}"'.lower()

        async def reported() -> bool:
            return any(violation in e.lower() for e in errors)

        await eventually(reported, what="permissions violation reported")
        assert (
            await admin.read(aggregate_filter(settings.namespace, COMMUNITY, "visits", "household", "h-4-4-301")) == []
        )

        own = NotificationSent.new(
            community=COMMUNITY,
            aggregate_id="n-1",
            actor="notify",
            data=NotificationData(
                notification_id="n-1", recipient="police-zhongnan", channel="webhook", subject_ref="i-1"
            ),
        )
        assert not (await store.append([own], 0)).duplicate
    finally:
        await nc.close()


async def test_only_the_admin_manages_streams(secured: SecuredNats, admin: EventStore, settings: Settings) -> None:
    errors: list[str] = []
    nc = await secured.connect("scoring", errors=errors)
    try:
        with pytest.raises(nats.errors.TimeoutError):  # the server drops the request
            await nc.jetstream(timeout=2).delete_stream(settings.stream_name())
        assert any("$js.api.stream.delete" in e.lower() for e in errors)
        assert (await admin.js.stream_info(settings.stream_name())).config.name == settings.stream_name()
    finally:
        await nc.close()


async def test_a_service_starts_on_the_streams_the_admin_made_and_only_looks_at_them(
    secured: SecuredNats, settings: Settings
) -> None:
    # How a service is configured in production: its own user and password, the cluster's CA.
    visits = settings.model_copy(
        update={
            "nats_url": secured.node.url,
            "nats_user": "visits",
            "nats_password": secured.passwords["visits"],
            "nats_passwords": {},
            "nats_tls_ca": secured.ca,
        }
    )
    nc = await connect(visits, "gridwork-visits")
    try:
        with pytest.raises(RuntimeError, match="as the NATS admin"):
            await EventStore(nc, visits).ensure_streams(manage=False)  # before the migration job ran
        admin = await secured.connect("admin")
        try:
            await EventStore(admin, settings).ensure_streams()
        finally:
            await admin.close()
        store = EventStore(nc, visits)
        await store.ensure_streams(manage=False)
        # even asked to manage them, it finds them as configured and changes nothing (no refused call)
        await store.ensure_streams()
        assert not (await store.append([tagged("h-3-2-201", "young")], 0)).duplicate
    finally:
        await nc.close()


async def test_a_wrong_password_or_an_untrusted_certificate_is_refused(secured: SecuredNats) -> None:
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
        await secured.connect("visits", password="guessed")
    with pytest.raises((nats.errors.NoServersError, nats.errors.Error, OSError)):
        # the system trust store does not know the cluster's CA
        await nats.connect(
            servers=[nats_url_for("visits", secured.passwords["visits"], [secured.node.url])],
            allow_reconnect=False,
            connect_timeout=3,
        )


class Poisoned:
    """A projection that counts households and chokes on one tag, to exercise dead-lettering (named
    as scoring's projection: a service user runs its own projections' consumers only)."""

    name = "scoring"
    event_types = ("HouseholdTagged",)
    ddl = "CREATE TABLE IF NOT EXISTS households (id text PRIMARY KEY);"

    async def apply(self, conn: asyncpg.Connection, events: Sequence[StoredEvent]) -> None:
        for e in events:
            event = e.event()
            assert isinstance(event, HouseholdTagged)
            if "poison" in event.data.tags:
                raise ValueError("unreadable household record")
            await conn.execute("INSERT INTO households VALUES ($1) ON CONFLICT DO NOTHING", event.aggregate_id)


async def test_a_projection_runs_and_dead_letters_under_a_service_user(
    secured: SecuredNats, admin: EventStore, settings: Settings
) -> None:
    s = settings.model_copy(update={"max_deliver": 1})
    nc = await secured.connect("scoring")
    pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await migrate(conn)  # the dead_letters table
    runner = ProjectionRunner(Poisoned(), nc=nc, pool=pool, settings=s)
    await runner.setup()  # schema and durable consumer, created by the service user
    task = asyncio.create_task(runner.run())
    try:
        await admin.append_many(
            [([tagged(f"h-{i}", "young")], 0) for i in range(20)] + [([tagged("h-bad", "poison")], 0)]
        )

        async def folded() -> bool:
            return await pool.fetchval("SELECT count(*) FROM proj_scoring.households") == 20

        await eventually(folded, timeout=30, what="20 households folded")
        # reading dead letters back is the operators' (the admin's), not the service's
        letters = await eventually(lambda: dead_letters(admin.nc, s, "scoring"), timeout=30, what="dead letter")
        assert letters[0]["reason"] and "unreadable household record" in letters[0]["reason"]
        status = await eventually(lambda: _lag_zero(runner), timeout=30, what="no lag")
        assert status["checkpoint"] == await admin.last_sequence()
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)
        await pool.close()
        await nc.close()


async def _lag_zero(runner: ProjectionRunner) -> dict[str, object] | None:
    status = await runner.status()
    return status if status["lag_events"] == 0 else None


async def test_a_running_server_takes_a_new_namespace_on_reload(
    secured: SecuredNats, admin: EventStore, settings: Settings
) -> None:
    # How one test server serves many namespaces (each test has its own): render the users for
    # all of them and reload.  Each namespace keeps its own context boundaries.
    later = settings.model_copy(update={"namespace": f"{settings.namespace}b"})
    errors: list[str] = []
    nc = await secured.connect("visits", errors=errors)
    try:
        store = EventStore(nc, later)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.append([tagged("h-1-1-101", "young")], 0), 3)
        secured.node.authorization = render_authorization([settings.namespace, later.namespace], secured.passwords)
        secured.node.reload()
        admin_later = EventStore(admin.nc, later)
        await admin_later.ensure_streams()

        async def appended() -> bool:
            try:
                return not (await asyncio.wait_for(store.append([tagged("h-1-1-101", "young")], 0), 2)).duplicate
            except TimeoutError:
                return False

        await eventually(appended, timeout=30, what="append in the new namespace")
    finally:
        await nc.close()


async def _refused(errors: list[str], what: str) -> None:
    async def reported() -> bool:
        return any("permissions violation" in e.lower() and what.lower() in e.lower() for e in errors)

    await eventually(reported, timeout=10, what=f"permissions violation for {what}")


async def test_the_visits_user_cannot_delete_or_drain_the_scoring_consumer(
    secured: SecuredNats, admin: EventStore, settings: Settings
) -> None:
    # scoring's projection runner made its durable consumer, as it does at start-up
    scoring = await secured.connect("scoring")
    pool = await asyncpg.create_pool(settings.database_urls["scoring"], min_size=1, max_size=2)
    durable = f"{settings.namespace}_scoring"
    try:
        await ProjectionRunner(Poisoned(), nc=scoring, pool=pool, settings=settings).setup()
        errors: list[str] = []
        visits = await secured.connect("visits", errors=errors)
        try:
            js = visits.jetstream(timeout=2)
            with pytest.raises(nats.errors.TimeoutError):
                await js.delete_consumer(settings.stream_name(), durable)
            await _refused(errors, f"$JS.API.CONSUMER.DELETE.{settings.stream_name()}.{durable}")
            with pytest.raises(nats.errors.TimeoutError):
                await js.consumer_info(settings.stream_name(), durable)
            # nor may it pull scoring's events off its consumer (a drained delivery is a hole in a fold)
            await visits.publish(f"$JS.API.CONSUMER.MSG.NEXT.{settings.stream_name()}.{durable}", b"1")
            await _refused(errors, f"$JS.API.CONSUMER.MSG.NEXT.{settings.stream_name()}.{durable}")
            # nor make a consumer of another name (a replay's ephemeral reader is the admin's)
            with pytest.raises(nats.errors.TimeoutError):
                await js.add_consumer(settings.stream_name(), durable_name=f"{settings.namespace}_stolen")
        finally:
            await visits.close()
        assert (await admin.js.consumer_info(settings.stream_name(), durable)).name == durable
    finally:
        await pool.close()
        await scoring.close()


async def test_a_service_dead_letters_only_its_own_projections(
    secured: SecuredNats, admin: EventStore, settings: Settings
) -> None:
    errors: list[str] = []
    visits = await secured.connect("visits", errors=errors)
    ns = settings.namespace
    try:
        await visits.publish(f"{ns}dlq.scoring", b"forged")
        await _refused(errors, f"{ns}dlq.scoring")
        # its own projection's dead letters it may write, but not read back (that is the operators')
        ack = await visits.jetstream(timeout=5).publish(f"{ns}dlq.visits_directory", b"poison")
        assert ack.seq == 1
        with pytest.raises(nats.errors.TimeoutError):
            await visits.jetstream(timeout=2).get_msg(settings.dlq_stream_name(), seq=1)
        assert [m["data"] for m in await dead_letters(admin.nc, settings, "scoring")] == []
    finally:
        await visits.close()


async def test_a_user_reads_replies_on_its_own_inbox_only(secured: SecuredNats, admin: EventStore) -> None:
    errors: list[str] = []
    visits = await secured.connect("visits", errors=errors)
    try:
        await visits.subscribe(f"{inbox_prefix('scoring')}.>")
        await _refused(errors, f'subscription to "{inbox_prefix("scoring")}.>"')
        await visits.subscribe("_INBOX.>")  # nats-py's default prefix: nobody's
        await _refused(errors, 'subscription to "_INBOX.>"')
        # its own prefix works: a request through JetStream gets its answer
        assert (await visits.jetstream(timeout=5).account_info()) is not None
    finally:
        await visits.close()
