"""The house rules of the code, read from the source: ``shared/`` is a library that never imports
a service, a service imports no other service, only the ``gridwork`` command (``services/cli``)
imports them all, and no module imports itself round a circle — at module level or inside a
function."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services")
#: Leaf modules of the command's package that import only ``shared``: a service's own ``cli`` and
#: ``bench`` rooms may use them.
CLI_KIT = {"services.cli.embedded", "services.cli.local", "services.cli.benchkit", "services.cli.workload"}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (a ``from a import b`` names ``a.b`` when it is a module)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)
        edges[name] = {t for t in targets if t in known and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def test_no_module_imports_itself_round_a_circle() -> None:
    assert cycles(graph()) == []


def test_shared_is_a_library_that_never_imports_a_service() -> None:
    reaching = {m: sorted(t for t in ts if t.startswith("services")) for m, ts in graph().items()}
    assert {m: ts for m, ts in reaching.items() if ts and m.startswith("shared")} == {}


def test_a_service_imports_no_other_service_only_the_command_imports_them_all() -> None:
    wrong: dict[str, list[str]] = {}
    for module, targets in graph().items():
        own = service_of(module)
        if own is None or own == "cli":
            continue
        others = sorted(t for t in targets if service_of(t) not in (None, own) and t not in CLI_KIT)
        if others:
            wrong[module] = others
    assert wrong == {}


def test_the_command_kit_imports_only_shared() -> None:
    edges = graph()
    reaching = {m: sorted(t for t in edges[m] if t.startswith("services") and t not in CLI_KIT) for m in CLI_KIT}
    assert reaching == {m: [] for m in CLI_KIT}


def test_the_rules_see_imports_inside_functions() -> None:
    # A guard on the checker itself: services/cli/main.py builds its parser inside a function.
    assert "services.cli.demo" in graph()["services.cli.main"]


# ------------------------------------------------------------------------------------------- rooms

SERVICES = ("visits", "issues", "scoring", "notify")
#: Every service has these rooms, each a module or a package of that name (docs/DEVELOPING.md).
ROOMS = (
    "domain",  # pure: state, commands, decide, evolve; no clock, no I/O
    "handlers",  # load → decide → append
    "queries",  # reads of its projections
    "projections",  # read models
    "reactions",  # process managers, timers, outbox workers
    "api",  # routes only
    "bootstrap",  # the composition root: the typed dependency object
    "app",  # the ServiceSpec and build_app
    "settings",
    "cli",
    "bench",
)
#: What a pure domain may not import: I/O, frameworks, the clock's owners.
IMPURE = (
    "asyncpg",
    "nats",
    "httpx",
    "aiohttp",
    "fastapi",
    "starlette",
    "shared.eventstore",
    "shared.db",
    "shared.service",
)
#: Calls that read the clock (a domain gets the time with the command).
CLOCK = ("now", "utcnow", "today", "time.time", "time.monotonic", "time.perf_counter")


def _room(service: str, room: str) -> Path:
    base = ROOT / "services" / service
    return base / f"{room}.py" if (base / f"{room}.py").exists() else base / room / "__init__.py"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_rooms(service: str) -> None:
    assert [room for room in ROOMS if not _room(service, room).exists()] == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_domain_is_pure_no_io_and_no_clock(service: str) -> None:
    edges = graph()
    prefix = f"services.{service}.domain"
    modules = [m for m in edges if m == prefix or m.startswith(prefix + ".")]
    assert modules, f"services/{service} has no domain"
    wrong: dict[str, list[str]] = {}
    for module in modules:
        path = modules_paths()[module]
        tree = ast.parse(path.read_text())
        imported = set()
        for node in _imports(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            imported |= {n for n in names if any(n == i or n.startswith(i + ".") for i in IMPURE)}
        clock = {
            ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and _reads_clock(ast.unparse(n.func))
        }
        if imported or clock:
            wrong[module] = sorted(imported | clock)
    assert wrong == {}


def _reads_clock(func: str) -> bool:
    return func in CLOCK or func.rsplit(".", 1)[-1] in ("now", "utcnow", "today")


def modules_paths() -> dict[str, Path]:
    return modules()


def test_no_two_classes_share_a_name() -> None:
    seen: dict[str, list[str]] = {}
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(module)
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}


@pytest.mark.parametrize("service", SERVICES)
def test_a_domain_draws_no_random_ids_or_numbers(service: str) -> None:
    """An event built in a domain gets its id from its inputs (``idempotency_key``), and randomness
    comes in as an argument: deciding twice on the same command gives the same events."""
    prefix = f"services.{service}.domain"
    wrong: dict[str, list[str]] = {}
    for module, path in modules().items():
        if not (module == prefix or module.startswith(prefix + ".")):
            continue
        found = []
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            # a ``**common`` splat may carry the key: the decide function builds it once for all
            keyed = any(k.arg in ("idempotency_key", None) for k in node.keywords)
            if func.endswith(".new") and not keyed:
                found.append(f"{func}() without idempotency_key, line {node.lineno}")
            if func in ("uuid7", "uuid4", "os.urandom", "secrets.token_hex") or func.startswith("random."):
                found.append(f"{func}(), line {node.lineno}")
        if found:
            wrong[module] = found
    assert wrong == {}
