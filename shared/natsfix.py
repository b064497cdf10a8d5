"""A faster header parser for nats-py, installed once per process by :func:`install`.

nats-py (2.16) checks every character of every header name with a generator expression; with
the five headers each stored event carries, that check alone cost a third of the time it takes
to consume an event.  This version keeps the same rules (split on ``:``, skip non-ASCII or
whitespace-bearing names, decode values as UTF-8 with replacement) with ``str.split``.
"""

from __future__ import annotations

from nats.aio.client import Client

_CRLF = b"\r\n"


def _parse_header_lines(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.split(_CRLF):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if key:
            parts = key.split()
            if len(parts) != 1 or parts[0] != key:
                continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out


def install() -> None:
    """Replace nats-py's header parser (idempotent)."""
    Client._parse_header_lines = staticmethod(_parse_header_lines)  # type: ignore[method-assign]
