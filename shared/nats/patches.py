"""Every patch gridwork makes to nats-py's private internals, and the switch back to stock nats-py.

Two patches live here — a faster header parser installed once per process by :func:`install`,
and a faster publish for headers we build ourselves (:func:`publish`) — and a third, the replay
reader's protocol parser, in :mod:`shared.nats.replay_reader`, which asks :func:`active` first.
They were written against the nats-py versions in :data:`SUPPORTED` (pyproject.toml bounds the
dependency the same way).  On any other version, or with ``GRIDWORK_NATS_STOCK_CLIENT=1``, every
one of them stands down and the stock client path runs: same behaviour, slower.

nats-py (2.16) checks every character of every header name with a generator expression; with
the five headers each stored event carries, that check alone cost a third of the time it takes
to consume an event.  This version keeps the same rules (split on ``:``, skip non-ASCII or
whitespace-bearing names, decode values as UTF-8 with replacement) with ``str.split`` — and it
parses only when somebody reads the headers: a projection folding an event never does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version

import structlog
from nats import errors
from nats.aio.client import Client

log = structlog.get_logger("gridwork.nats")

#: nats-py releases whose internals the patches were written against and tested with: (major, minor).
SUPPORTED = ((2, 16),)
#: The environment variable that turns every patch off (the stock nats-py path).
STOCK_VARIABLE = "GRIDWORK_NATS_STOCK_CLIENT"

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


def installed_version() -> str:
    """The installed nats-py's version ("unknown" when its metadata is missing)."""
    try:
        return version("nats-py")
    except PackageNotFoundError:
        return "unknown"


def supported(release: str) -> bool:
    """Whether the patches were written for nats-py ``release`` (major.minor in :data:`SUPPORTED`)."""
    parts = release.split(".")
    try:
        return (int(parts[0]), int(parts[1])) in SUPPORTED
    except (IndexError, ValueError):
        return False


def stock_requested() -> bool:
    """``GRIDWORK_NATS_STOCK_CLIENT`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(STOCK_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


_state: dict[str, bool] = {}


def active() -> bool:
    """Whether the patches run in this process: decided once, at the first call (start-up).

    Off when the stock path is asked for, or when the installed nats-py is not one the patches were
    written for — then a warning says so and the stock path runs, rather than patching internals
    that may have changed."""
    if "active" not in _state:
        release = installed_version()
        if stock_requested():
            _state["active"] = False
            log.info("nats_stock_client", nats_py=release, reason=f"{STOCK_VARIABLE} is set")
        elif not supported(release):
            _state["active"] = False
            log.warning(
                "nats_patches_disabled",
                nats_py=release,
                written_for=[f"{a}.{b}" for a, b in SUPPORTED],
                reason="the installed nats-py is not a version the patches were written for; running stock",
            )
        else:
            _state["active"] = True
    return _state["active"]


#: nats-py's own parser (the staticmethod object itself, so putting it back keeps it static).
_stock_parse_header_lines = Client.__dict__["_parse_header_lines"]


def install() -> None:
    """Replace nats-py's header parser when the patches are :func:`active` (idempotent)."""
    if active():
        Client._parse_header_lines = staticmethod(LazyHeaders)  # type: ignore[method-assign,assignment]
    else:
        # putting back nats-py's own staticmethod object, which mypy reads as assigning to a method
        Client._parse_header_lines = _stock_parse_header_lines  # type: ignore[method-assign]


def reset() -> None:
    """Decide :func:`active` again at the next call, and undo :func:`install` (for tests)."""
    _state.clear()
    Client._parse_header_lines = _stock_parse_header_lines  # type: ignore[method-assign]


#: What :func:`publish` uses of a connection besides its public API (nats-py 2.x).
_INTERNALS = (
    "_send_command",
    "_flush_queue",
    "_flush_pending",
    "_max_payload",
    "_pending_data_size",
    "_max_pending_size",
)


def header_block(headers: Mapping[str, str]) -> bytes:
    """The ``NATS/1.0`` header block of names and values that need no checking (ids, numbers, subjects)."""
    return ("NATS/1.0\r\n" + "".join([f"{k}: {v}\r\n" for k, v in headers.items()]) + "\r\n").encode()


def can_frame(nc: Client) -> bool:
    """Whether to frame publishes on this connection: the patches are :func:`active` and it has the
    internals :func:`publish_framed` queues through (ask once per connection)."""
    return active() and all(hasattr(nc, name) for name in _INTERNALS)


async def publish(nc: Client, subject: str, payload: bytes, reply: str, headers: Mapping[str, str]) -> None:
    """``nc.publish(subject, payload, reply=reply, headers=headers)`` for the event store's own headers:
    framed by :func:`publish_framed`, or plain ``nc.publish`` on a nats-py without those internals."""
    if can_frame(nc):
        await publish_framed(nc, subject, payload, reply, headers)
    else:
        await nc.publish(subject, payload, reply=reply, headers=dict(headers))


async def publish_framed(nc: Client, subject: str, payload: bytes, reply: str, headers: Mapping[str, str]) -> None:
    """Frame the HPUB ourselves and queue it as nats-py does, with the same connection-state checks.

    nats-py checks every header name against a regular expression and cleans every value, byte
    by byte, on every publish — a fifth of an append's client CPU.  The event store's headers are
    its own (event ids, versions, subjects made of checked tokens), so they need none of it.
    Only for a connection where :func:`can_frame` holds.
    """
    if nc.is_closed:
        raise errors.ConnectionClosedError
    if nc.is_draining_pubs:
        raise errors.ConnectionDrainingError
    size = len(payload)
    if not nc.is_connected and (nc._max_pending_size <= 0 or size + nc._pending_data_size > nc._max_pending_size):
        raise errors.OutboundBufferLimitError
    if size > nc._max_payload:
        raise errors.MaxPayloadError
    block = header_block(headers)
    head = f"HPUB {subject} {reply} {len(block)} {len(block) + size}\r\n".encode()
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += size
    await nc._send_command(b"".join((head, block, payload, _CRLF)))
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()
