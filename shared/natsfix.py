"""A faster header parser for nats-py, installed once per process by :func:`install`.

nats-py (2.16) checks every character of every header name with a generator expression; with
the five headers each stored event carries, that check alone cost a third of the time it takes
to consume an event.  This version keeps the same rules (split on ``:``, skip non-ASCII or
whitespace-bearing names, decode values as UTF-8 with replacement) with ``str.split`` — and it
parses only when somebody reads the headers: a projection folding an event never does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

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


class LazyHeaders(Mapping[str, str]):
    """A message's headers, parsed from the raw block on first read."""

    __slots__ = ("_parsed", "_raw")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._parsed: dict[str, str] | None = None

    def _headers(self) -> dict[str, str]:
        if self._parsed is None:
            self._parsed = _parse_header_lines(self._raw)
        return self._parsed

    def __getitem__(self, key: str) -> str:
        return self._headers()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return len(self._headers())

    def __bool__(self) -> bool:  # nats-py asks "any headers?" of every message: answer without parsing
        return bool(self._raw.strip()) if self._parsed is None else bool(self._parsed)

    def __repr__(self) -> str:
        return repr(self._headers())


def install() -> None:
    """Replace nats-py's header parser (idempotent)."""
    Client._parse_header_lines = staticmethod(LazyHeaders)  # type: ignore[method-assign,assignment]
