"""Passwords: Argon2id hashes (argon2-cffi), sealed for the event stream, checked off the event loop.

A hash is sealed with AES-GCM under the console's own key, bound to the username, before it goes
into an event: the other services read the whole stream and must not hold anyone's hash.  Hashing
and verifying take tens of milliseconds of CPU on purpose, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Argon2id with argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes).
_HASHER = PasswordHasher()

#: A one-time password: 12 characters from an alphabet without look-alikes (0/O, 1/l/I).
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def one_time_password() -> str:
    """A random first password to hand to a person, who replaces it at first sign-in."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


class Passwords:
    """Hashes, seals, opens and verifies passwords with the console's sealing key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def _seal(self, digest: str, username: str) -> str:
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, digest.encode(), username.encode())
        return base64.b64encode(blob).decode()

    def _open(self, sealed: str, username: str) -> str | None:
        try:
            blob = base64.b64decode(sealed)
            return self._aead.decrypt(blob[:12], blob[12:], username.encode()).decode()
        except (InvalidTag, ValueError):
            return None

    async def sealed_hash(self, password: str, username: str) -> str:
        """The sealed Argon2id hash of ``password`` for ``username``'s events."""
        digest = await asyncio.to_thread(_HASHER.hash, password)
        return self._seal(digest, username)

    async def verify(self, sealed: str, username: str, password: str) -> bool:
        """Whether ``password`` is the one sealed for ``username`` (False for a blob that does not open)."""
        digest = self._open(sealed, username)
        if digest is None:
            return False
        try:
            return await asyncio.to_thread(_HASHER.verify, digest, password)
        except (VerificationError, InvalidHashError):
            return False

    async def burn(self, password: str) -> None:
        """Spend the time a verification costs, for an unknown username (no timing tells it apart)."""
        await asyncio.to_thread(_HASHER.hash, password)
