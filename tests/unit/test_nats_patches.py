"""The nats-py patches know which releases they were written for, and stand down otherwise."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.protocol.parser import Parser

from shared.nats import patches
from shared.nats.replay_reader import _register, _unregister


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


class _Connection:
    """What the protocol parsers use of a connection: the message callback and the counters."""

    def __init__(self) -> None:
        self.stats = {"in_msgs": 0, "in_bytes": 0}
        self.got: list[tuple[int, bytes, bytes | None]] = []
        self._ps: Parser = Parser(self)

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, payload: bytes, hdr: bytes | None) -> None:
        self.got.append((sid, payload, hdr))


async def test_a_replay_parser_swapped_in_mid_message_and_out_again_keeps_one_parsing_state() -> None:
    nc = _Connection()
    original = nc._ps
    hdr, body = b"NATS/1.0\r\nNats-Msg-Id: e1\r\n\r\n", b'{"event": 1}'
    line = b"HMSG gw.c.visits.visit.v1.VisitLogged 1 $JS.ACK.S.C.1.1.1.1.0 %d %d\r\n" % (len(hdr), len(hdr) + len(body))
    await original.parse(line + hdr[:5])  # the live consumer's delivery, half arrived
    assert original.header_needed == len(hdr)
    _register(nc, 7, lambda *delivery: None)  # a replay starts on the same connection
    await nc._ps.parse(hdr[5:] + body + b"\r\n")  # the rest arrives through the replay's parser
    _unregister(nc, 7)  # the replay ends
    assert nc._ps is original
    # The next message has no headers (a JetStream API reply): it must arrive whole.
    reply = b'{"type": "io.nats.jetstream.api.v1.consumer_info_response", "name": "c"}'
    await nc._ps.parse(b"MSG _INBOX_admin.x.y 2 %d\r\n" % len(reply) + reply + b"\r\n")
    assert nc.got == [(1, body, hdr), (2, reply, None)]
