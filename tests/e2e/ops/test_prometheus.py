"""Monitoring that operations staff can rely on: Prometheus config, alert rules, dashboards, and a
real Prometheus server scraping a running service.

promtool and prometheus come from the Debian package ``prometheus`` (deploy/ci/install-tools.sh);
without them these tests skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.cli.embedded import free_port
from services.cli.stack import SERVICE_NAMES, LocalStack
from services.scoring.app import build_app
from shared.events.console import ACCOUNTS_COMMUNITY, AccountOpened, AccountOpenedData, Scope
from shared.events.visits import (
    CommunityRegistered,
    CommunityRegisteredData,
    HouseholdTagged,
    HouseholdTaggedData,
)
from shared.eventstore import EventStore, connect
from shared.settings import Settings
from tests.harness import eventually, running

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules" / "gridwork.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
INSTALL = "run deploy/ci/install-tools.sh (Debian package prometheus)"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason=f"promtool not installed: {INSTALL}")
needs_prometheus = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason=f"prometheus server not installed: {INSTALL}"
)


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


@needs_promtool
def test_the_prometheus_config_and_its_rules_are_valid() -> None:
    done = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout and "11 rules found" in done.stdout
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr


@needs_promtool
def test_every_alert_fires_when_it_should_and_stays_quiet_when_it_should_not() -> None:
    tests = PROMETHEUS_DIR / "tests" / "gridwork_test.yml"
    done = promtool("test", "rules", tests.name, cwd=tests.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    # every alert of the rule file has at least one unit test that expects it to fire
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    firing = {
        case["alertname"]
        for test in yaml.safe_load(tests.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == firing


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, panel["title"], target["expr"]))
    return out


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # Grafana's variables become what Grafana would send, then promtool parses each query as a rule.
    rules = []
    for i, (board, title, expr) in enumerate(dashboard_queries()):
        promql = expr.replace("$__rate_interval", "1m").replace("$__range", "6h")
        promql = re.sub(r"\$\w+", ".*", promql)
        rules.append({"record": f"dashboard:{board}:{i}", "expr": promql, "labels": {"panel": title}})
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(rules) >= 30


def test_dashboards_are_provisioned_against_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert {p.stem for p in DASHBOARDS} == {"operations", "community"}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == uid, f"{path.name}: {panel['title']}"


def test_every_gridwork_metric_the_deployment_relies_on_is_documented() -> None:
    used: set[str] = set()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"gridwork_[a-z_]+", rule["expr"]))
    for _board, _title, expr in dashboard_queries():
        used |= set(re.findall(r"gridwork_[a-z_]+", expr))
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    documented = (ROOT / "docs" / "OPERATIONS.md").read_text()
    missing = sorted(m for m in used if f"`{m}" not in documented)
    assert not missing, f"metrics used by alerts/dashboards but not in docs/OPERATIONS.md: {missing}"


@needs_promtool
async def test_a_running_service_exposes_metrics_that_pass_promtool(settings: Settings) -> None:
    app = build_app(settings)
    admin = await connect(settings, "tests-admin")
    async with running(app) as client:
        # appended events, so the gridwork_ domain series and FastStream's broker series exist too
        # (visits events: written by the admin connection, as the scoring service's own user may not)
        events = [
            CommunityRegistered.new(
                community="bairuijing",
                aggregate_id="bairuijing",
                actor="admin",
                data=CommunityRegisteredData(community_id="bairuijing", name="白瑞景", street="s01"),
            ),
            HouseholdTagged.new(
                community="bairuijing",
                aggregate_id="h-2-1-502",
                actor="w07",
                data=HouseholdTaggedData(household_id="h-2-1-502", tags=["elderly_alone"]),
            ),
        ]
        try:
            for event in events:
                await EventStore(admin, settings).append([event], 0)
        finally:
            await admin.close()
        await client.get("/healthz")

        async def folded() -> str | None:
            text = (await client.get("/metrics")).text
            return text if 'app_name="scoring"' in text else None

        exposition = await eventually(folded, timeout=30, what="scoring's broker metrics")
    assert 'gridwork_events_appended_total{type="HouseholdTagged"}' in exposition
    # FastStream's broker metrics, labelled by consumer (never by the per-household subject)
    consumed = r'faststream_received_messages_total\{app_name="scoring",broker="nats",handler="\w+"\}'
    assert re.search(consumed, exposition)
    assert "h-2-1-502" not in exposition
    assert "process_cpu_seconds_total" in exposition
    done = promtool("check", "metrics", stdin=exposition)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


@pytest.fixture
def services(settings: Settings) -> Iterator[dict[str, str]]:
    """The four services as `gridwork up` runs them: separate processes, settings from the environment."""
    ports = {f"{name}_port": free_port() for name in SERVICE_NAMES}
    stack = LocalStack(settings.model_copy(update=ports))
    endpoints = stack.start(echo=lambda _line: None)
    try:
        yield {name: url.removeprefix("http://") for name, url in endpoints["services"].items()}
    finally:
        stack.stop(echo=lambda _line: None)


@pytest.fixture
def prometheus_server(tmp_path: Path, services: dict[str, str]) -> Iterator[str]:
    """A real Prometheus scraping the four services every second, with the deployment's alert rules."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "gridwork",
                "static_configs": [
                    {"targets": [target], "labels": {"service": name}} for name, target in services.items()
                ],
            }
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@needs_prometheus
async def test_a_real_prometheus_scrapes_every_running_service(
    settings: Settings, services: dict[str, str], prometheus_server: str
) -> None:
    # A community joins: every service's projections consume the event, so each service's
    # FastStream broker metrics (app_name = the service) have a series for its consumers.
    admin = await connect(settings, "tests-admin")
    try:
        joined = CommunityRegistered.new(
            community="bairuijing",
            aggregate_id="bairuijing",
            actor="admin",
            data=CommunityRegisteredData(community_id="bairuijing", name="白瑞景", street="s01"),
        )
        await EventStore(admin, settings).append([joined], 0)
        # and an account is opened: the console's projection folds accounts, not communities
        opened = AccountOpened.new(
            community=ACCOUNTS_COMMUNITY,
            aggregate_id="ops-one",
            actor="admin",
            data=AccountOpenedData(
                username="ops-one", display_name="Ops", scope=Scope(role="ops"), password_sealed="not-a-hash"
            ),
        )
        await EventStore(admin, settings).append([opened], 0)
    finally:
        await admin.close()
    async with httpx.AsyncClient(timeout=5) as http:

        async def query(promql: str) -> list[dict[str, object]]:
            try:
                body = (await http.get(f"{prometheus_server}/api/v1/query", params={"query": promql})).json()
            except (httpx.HTTPError, ValueError):
                return []
            return body.get("data", {}).get("result", [])

        for name, target in services.items():
            up = await eventually(
                lambda name=name: query(f'up{{job="gridwork", service="{name}"}} == 1'), timeout=60, what=f"{name} up"
            )
            assert up[0]["metric"]["instance"] == target  # type: ignore[index]
            # One domain metric of each service: its projections' lag (read at most every 5 s by a scrape).
            lag = await eventually(
                lambda name=name: query(f'gridwork_projection_lag_events{{service="{name}"}}'),
                timeout=30,
                what=f"{name} projection lag",
            )
            assert all(float(series["value"][1]) >= 0 for series in lag)  # type: ignore[index]
            # FastStream's broker metrics: the service's projections received the event and folded it.
            folded = await eventually(
                lambda name=name: query(
                    f'faststream_received_processed_messages_total{{service="{name}", app_name="{name}",'
                    ' broker="nats", status="acked"} >= 1'
                ),
                timeout=30,
                what=f"{name} broker metrics",
            )
            assert {series["metric"]["handler"] for series in folded}  # type: ignore[index]
        cpu = await eventually(lambda: query('process_cpu_seconds_total{job="gridwork"}'), timeout=30, what="cpu")
        assert {series["metric"]["service"] for series in cpu} == set(services)  # type: ignore[index]

        rules = (await http.get(f"{prometheus_server}/api/v1/rules")).json()["data"]["groups"]
        assert {g["name"] for g in rules} >= {"gridwork-projections", "gridwork-availability", "gridwork-nats"}
        assert all(r["health"] in ("ok", "unknown") for g in rules for r in g["rules"])


@needs_promtool
def test_metrics_move_to_an_operations_address_of_a_running_service(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The visits service as `gridwork up` runs it, told to serve /metrics on an address of its own.
    ops_port = free_port()
    monkeypatch.setenv("GRIDWORK_METRICS_ADDRESS", f"127.0.0.1:{ops_port}")
    stack = LocalStack(settings.model_copy(update={"visits_port": free_port()}), services=("visits",))
    endpoints = stack.start(echo=lambda _line: None)
    proc = stack.procs["visits"]
    try:
        public = endpoints["services"]["visits"]
        with httpx.Client(timeout=10) as http:
            assert http.get(f"{public}/metrics").status_code == 404
            assert http.get(f"{public}/readyz").status_code == 200
            ops = http.get(f"http://127.0.0.1:{ops_port}/metrics")
            assert ops.status_code == 200
            assert "gridwork_projection_lag_events" in ops.text and "process_cpu_seconds_total" in ops.text
            # the operations address serves the metrics and nothing else
            for path in ("/readyz", "/docs", "/v1/communities/bairuijing/households"):
                assert http.get(f"http://127.0.0.1:{ops_port}{path}").status_code == 404
        done = promtool("check", "metrics", stdin=ops.text)
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    finally:
        stack.stop(echo=lambda _line: None)
    # SIGTERM still reaches the service's own server: it shuts down gracefully, the side server with
    # it (uvicorn re-raises the signal once it has shut down: the exit status is SIGTERM's)
    assert proc.returncode in (0, -signal.SIGTERM)
    log = (Path(endpoints["data_dir"]) / "logs" / "visits.log").read_text()
    assert "side_server_started" in log and "service_stopped" in log
    with httpx.Client(timeout=2) as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{ops_port}/metrics")
