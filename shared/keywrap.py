"""The key-encryption key (KEK): household keys are stored only wrapped by a key that never
enters PostgreSQL.

A database credential, a ``pg_dump``, a replica or a backup of ``visits_household_keys`` yields
wrapped keys and KEK ids, nothing that opens a sealed field.  Each key is wrapped with the
household's identity as associated data, so a wrapped key copied onto another household's row
does not open there.

:class:`KeyWrapper` is what the visits service needs of a KEK; a KMS (a cloud KMS, Vault's
transit engine, an HSM) can implement it.  :class:`LocalKeyring` is the one shipped: 32 random
bytes (base64) from a file (``GRIDWORK_KEK_FILE``, a compose secret) or the environment
(``GRIDWORK_KEK``), plus retired KEKs that still unwrap while ``gridwork keys rewrap`` moves every
key onto the current one (docs/OPERATIONS.md, "Rotating secrets").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.settings import Settings

#: Bytes of a KEK: AES-256.
KEK_BYTES = 32

_NONCE = 12


class KeyUnwrapError(Exception):
    """A wrapped key that does not open: its KEK is not held, or it was wrapped for another row."""


class KeyWrapper(Protocol):
    """Wraps and unwraps household keys under a KEK held outside PostgreSQL.

    ``context`` (the household's identity) is bound to the wrapped key: unwrapping with another
    context fails.  The methods are coroutines because a KMS answers over the network."""

    @property
    def key_id(self) -> str:
        """The id of the KEK new keys are wrapped under; stored beside every wrapped key."""
        ...

    def knows(self, key_id: str) -> bool:
        """Whether keys wrapped under ``key_id`` can be unwrapped here."""
        ...

    async def wrap(self, key: bytes, context: bytes) -> bytes:
        """``key`` wrapped under the current KEK (:attr:`key_id`)."""
        ...

    async def unwrap(self, wrapped: bytes, key_id: str, context: bytes) -> bytes:
        """The key inside ``wrapped``; :class:`KeyUnwrapError` when it does not open."""
        ...


def kek_id(kek: bytes) -> str:
    """A KEK's id: a fingerprint that names it without revealing it (a KEK is 256 random bits)."""
    return "local:" + hashlib.sha256(b"gridwork-kek-id\0" + kek).hexdigest()[:16]


class LocalKeyring:
    """A local KEK (AES-256-GCM, a fresh nonce per wrap) and the retired ones it still unwraps with."""

    def __init__(self, current: bytes, retired: Sequence[bytes] = ()) -> None:
        for kek in (current, *retired):
            if len(kek) != KEK_BYTES:
                raise ValueError(f"a KEK is {KEK_BYTES} bytes, not {len(kek)}")
        self._current = AESGCM(current)
        self._key_id = kek_id(current)
        self._all = {kek_id(kek): AESGCM(kek) for kek in (*retired, current)}

    @property
    def key_id(self) -> str:
        return self._key_id

    def knows(self, key_id: str) -> bool:
        return key_id in self._all

    async def wrap(self, key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._current.encrypt(nonce, key, context)

    async def unwrap(self, wrapped: bytes, key_id: str, context: bytes) -> bytes:
        aes = self._all.get(key_id)
        if aes is None:
            raise KeyUnwrapError(f"no KEK with id {key_id} is configured")
        try:
            return aes.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except InvalidTag:
            raise KeyUnwrapError(f"a key wrapped under {key_id} does not open for this household") from None


def _decode(value: str, source: str) -> bytes:
    try:
        kek = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise RuntimeError(f"{source} is not base64: make one with `openssl rand -base64 32`") from None
    if len(kek) < KEK_BYTES:
        raise RuntimeError(
            f"{source} is {len(kek)} bytes; a KEK must be {KEK_BYTES} random bytes, base64 (`openssl rand -base64 32`)"
        )
    if len(kek) != KEK_BYTES:
        raise RuntimeError(f"{source} is {len(kek)} bytes; a KEK is exactly {KEK_BYTES} bytes (AES-256)")
    return kek


def _read(path: Path, source: str) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise RuntimeError(f"{source}={path} cannot be read ({err.strerror})") from None


def keyring_from_settings(settings: Settings) -> LocalKeyring:
    """The local keyring the settings name; RuntimeError (the service refuses to start) when no
    KEK is configured or one is malformed."""
    if settings.kek and settings.kek_file:
        raise RuntimeError("set GRIDWORK_KEK_FILE or GRIDWORK_KEK, not both")
    if settings.kek_file:
        current = _decode(_read(settings.kek_file, "GRIDWORK_KEK_FILE"), f"GRIDWORK_KEK_FILE ({settings.kek_file})")
    elif settings.kek:
        current = _decode(settings.kek, "GRIDWORK_KEK")
    else:
        raise RuntimeError(
            "GRIDWORK_KEK_FILE (or GRIDWORK_KEK) is not set: residents' household keys are stored only "
            "wrapped by a key-encryption key kept outside PostgreSQL, and the services holding them do not "
            "start without it (`openssl rand -base64 32`; `gridwork up` makes one in its data dir)"
        )
    retired_text = settings.kek_retired
    if settings.kek_retired_file:
        retired_text += "\n" + _read(settings.kek_retired_file, "GRIDWORK_KEK_RETIRED_FILE")
    retired = [
        _decode(value, f"a retired KEK (number {i + 1})")
        for i, value in enumerate(v for v in retired_text.replace(",", "\n").split() if v)
    ]
    return LocalKeyring(current, retired)


def require_known_keks(wrapper: KeyWrapper, kek_ids: Iterable[str], what: str) -> None:
    """Refuse (RuntimeError) when ``what`` (keys) are wrapped under a KEK ``wrapper`` does not hold:
    a wrong or missing KEK is found at start-up, not at the first key unwrapped."""
    unknown = sorted(i for i in set(kek_ids) if not wrapper.knows(i))
    if unknown:
        raise RuntimeError(
            f"{what} are wrapped under KEK {', '.join(unknown)}, which this process does not hold "
            f"(its KEK is {wrapper.key_id}): configure that KEK as GRIDWORK_KEK_FILE, or as a retired "
            "KEK (GRIDWORK_KEK_RETIRED_FILE) while `gridwork keys rewrap` moves the keys to the new one"
        )


#: The services holding residents' personal data, and so the KEK: visits (household keys, free
#: text), issues (the free text it seals), notify (the texts it reveals to send a message).
KEK_HOLDERS: tuple[str, ...] = ("visits", "issues", "notify")


def require_kek(settings: Settings) -> None:
    """Refuse to start (RuntimeError) without a usable KEK (``ServiceSpec.checks``)."""
    keyring_from_settings(settings)


def new_kek() -> str:
    """A fresh KEK, base64 (what ``GRIDWORK_KEK`` and the KEK file hold)."""
    return base64.b64encode(os.urandom(KEK_BYTES)).decode()
