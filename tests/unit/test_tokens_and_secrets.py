"""Bearer tokens name their audience and are refused anywhere else; a service refuses to run on a
guessable signing secret; the local stack's secret files are never readable by others."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from services.cli.embedded import write_private
from services.cli.local import local_jwt_secret
from shared.auth import MIN_SECRET_BYTES, authenticate, check_signing_secret, mint_token
from shared.settings import Settings

SECRET = "k" * 64


def test_a_token_carries_its_audience_and_is_refused_by_another() -> None:
    ours = Settings(jwt_secret=SECRET)
    token = mint_token(ours, role="secretary", community="bairuijing")
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "gridwork"
    assert authenticate(ours, token).community == "bairuijing"
    elsewhere = Settings(jwt_secret=SECRET, jwt_audience="another-system")
    with pytest.raises(jwt.InvalidAudienceError):
        authenticate(elsewhere, token)


def test_a_token_without_an_audience_is_refused() -> None:
    settings = Settings(jwt_secret=SECRET)
    claims = {"sub": "w-07", "role": "grid_worker", "iss": "gridwork", "exp": int(time.time()) + 60}
    with pytest.raises(jwt.MissingRequiredClaimError):
        authenticate(settings, jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("secret", ["", "short", "x" * (MIN_SECRET_BYTES - 1)])
def test_a_service_refuses_a_missing_or_short_signing_secret(secret: str) -> None:
    with pytest.raises(RuntimeError, match="GRIDWORK_JWT_SECRET"):
        check_signing_secret(Settings(jwt_secret=secret))


def test_a_signing_secret_of_32_bytes_is_enough() -> None:
    check_signing_secret(Settings(jwt_secret="x" * MIN_SECRET_BYTES))


def test_the_local_stacks_secret_is_created_owner_only(tmp_path: Path) -> None:
    secret = local_jwt_secret(tmp_path)
    assert len(bytes.fromhex(secret)) == 32
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600
    assert local_jwt_secret(tmp_path) == secret  # kept across starts


def test_a_private_file_that_existed_readable_is_closed_before_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "nats.conf"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "authorization { users: [...] }")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().startswith("authorization")
