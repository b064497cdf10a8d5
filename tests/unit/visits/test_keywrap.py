"""The key-encryption key: a household key wrapped for one household opens only there, only with
its KEK (or a retired one during a rotation), and the visits service does not start without a
KEK of 32 bytes."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import pytest

from services.cli.local import load_settings, local_kek_file
from services.visits.app import build_app
from services.visits.pii import key_context
from shared.keywrap import KeyUnwrapError, KeyWrapper, LocalKeyring, keyring_from_settings
from shared.settings import Settings

JWT = "x" * 64


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_a_wrapped_key_opens_for_its_household_only() -> None:
    keyring: KeyWrapper = LocalKeyring(secrets.token_bytes(32))
    key = secrets.token_bytes(32)
    wrapped = await keyring.wrap(key, key_context("bairuijing", "h-1"))
    assert key not in wrapped
    assert await keyring.unwrap(wrapped, keyring.key_id, key_context("bairuijing", "h-1")) == key
    with pytest.raises(KeyUnwrapError):
        await keyring.unwrap(wrapped, keyring.key_id, key_context("bairuijing", "h-2"))
    with pytest.raises(KeyUnwrapError):
        await keyring.unwrap(wrapped, keyring.key_id, key_context("donghu", "h-1"))


async def test_only_the_kek_that_wrapped_a_key_or_a_retired_one_held_for_rotation_opens_it() -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    before = LocalKeyring(old)
    wrapped = await before.wrap(b"k" * 32, b"ctx")
    stranger = LocalKeyring(new)
    assert not stranger.knows(before.key_id)
    with pytest.raises(KeyUnwrapError, match="no KEK"):
        await stranger.unwrap(wrapped, before.key_id, b"ctx")
    with pytest.raises(KeyUnwrapError):  # a forged id does not help
        await stranger.unwrap(wrapped, stranger.key_id, b"ctx")
    rotating = LocalKeyring(new, retired=[old])
    assert rotating.key_id == stranger.key_id and rotating.knows(before.key_id)
    assert await rotating.unwrap(wrapped, before.key_id, b"ctx") == b"k" * 32
    # the id names a KEK without containing it
    assert b64(old) not in before.key_id and old.hex() not in before.key_id


@pytest.mark.parametrize(
    ("kek", "message"),
    [
        ("", "is not set"),
        (b64(secrets.token_bytes(16)), "16 bytes"),
        (b64(secrets.token_bytes(31)), "31 bytes"),
        (b64(secrets.token_bytes(48)), "exactly 32"),
        ("not base64 at all!", "not base64"),
    ],
)
def test_a_missing_short_or_malformed_kek_is_refused(kek: str, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        keyring_from_settings(Settings(kek=kek))


def test_the_kek_is_read_from_its_file_and_a_retired_one_from_another(tmp_path: Path) -> None:
    current, retired = secrets.token_bytes(32), secrets.token_bytes(32)
    (tmp_path / "kek").write_text(b64(current) + "\n")
    (tmp_path / "retired").write_text(b64(retired) + "\n")
    keyring = keyring_from_settings(Settings(kek_file=tmp_path / "kek", kek_retired_file=tmp_path / "retired"))
    assert keyring.key_id == LocalKeyring(current).key_id
    assert keyring.knows(LocalKeyring(retired).key_id)
    with pytest.raises(RuntimeError, match="not both"):
        keyring_from_settings(Settings(kek_file=tmp_path / "kek", kek=b64(current)))
    with pytest.raises(RuntimeError, match="cannot be read"):
        keyring_from_settings(Settings(kek_file=tmp_path / "missing"))


def test_the_kek_never_shows_in_the_settings_repr() -> None:
    kek = b64(secrets.token_bytes(32))
    assert kek not in repr(Settings(kek=kek, kek_retired=kek))


@pytest.mark.parametrize("kek", ["", b64(secrets.token_bytes(16))])
async def test_the_visits_service_refuses_to_start_before_it_connects_anywhere(kek: str) -> None:
    # no server URL at all: the check comes before any connection
    app = build_app(Settings(jwt_secret=JWT, kek=kek))
    with pytest.raises(RuntimeError, match="GRIDWORK_KEK"):
        async with app.router.lifespan_context(app):
            pass


def test_the_local_stacks_kek_is_created_owner_only_and_used_only_with_its_own_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [v for v in os.environ if v.startswith("GRIDWORK_")]:
        monkeypatch.delenv(var)
    path = local_kek_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text())) == 32
    assert local_kek_file(tmp_path).read_text() == path.read_text()  # made once
    assert load_settings(use_running_stack=False, data_dir=tmp_path).kek_file == path
    # a command pointed at another database must be given that deployment's KEK
    other = load_settings(use_running_stack=False, data_dir=tmp_path, database_url="postgresql://db.example/gw")
    assert other.kek_file is None and other.kek == ""
