"""The nats-py patches know which releases they were written for, and stand down otherwise."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from shared.nats import patches


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch):
    patches.reset()
    yield monkeypatch
    monkeypatch.undo()
    patches.reset()
    patches.install()  # as the rest of the process had it


def test_the_patches_name_the_releases_they_were_written_for() -> None:
    assert patches.supported("2.16.0") and patches.supported("2.16.3")
    assert not patches.supported("2.17.0") and not patches.supported("3.0") and not patches.supported("unknown")


def test_pyproject_bounds_nats_py_to_the_supported_releases() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    spec = next(d for d in pyproject["project"]["dependencies"] if d.startswith("nats-py"))
    newest = max(patches.SUPPORTED)
    assert f"<{newest[0]}.{newest[1] + 1}" in spec, spec


def test_the_installed_release_is_patched_and_the_header_parser_swapped(fresh: pytest.MonkeyPatch) -> None:
    fresh.delenv(patches.STOCK_VARIABLE, raising=False)
    assert patches.active() == patches.supported(patches.installed_version())
    patches.install()
    parsed = Client._parse_header_lines(b"NATS/1.0\r\nNats-Msg-Id: e1\r\n\r\n")
    assert isinstance(parsed, patches.LazyHeaders) and parsed["Nats-Msg-Id"] == "e1"


def test_the_stock_switch_leaves_nats_py_as_it_ships(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv(patches.STOCK_VARIABLE, "1")
    patches.install()
    assert not patches.active()
    parsed = Client._parse_header_lines(b"NATS/1.0\r\nNats-Msg-Id: e1\r\n\r\n")
    assert type(parsed) is dict and parsed["Nats-Msg-Id"] == "e1"
    assert not patches.can_frame(Client())


def test_an_unknown_release_runs_stock(fresh: pytest.MonkeyPatch) -> None:
    fresh.delenv(patches.STOCK_VARIABLE, raising=False)
    fresh.setattr(patches, "installed_version", lambda: "2.99.0")
    assert not patches.active()


def test_every_patched_library_is_bounded_to_the_releases_its_patch_was_written_for() -> None:
    import tomllib
    from pathlib import Path

    from shared.http_adapter import INSTRUMENTATOR_SUPPORTED
    from shared.nats.broker_metrics import FASTSTREAM_SUPPORTED, faststream_supported

    deps = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    spec = {d.split(">")[0].split("[")[0]: d for d in deps["dependencies"]}
    major, minor = max(FASTSTREAM_SUPPORTED)
    assert f"<{major}.{minor + 1}" in spec["faststream"]
    assert f"<{max(INSTRUMENTATOR_SUPPORTED) + 1}" in spec["prometheus-fastapi-instrumentator"]
    assert faststream_supported()  # the installed release is one of them
