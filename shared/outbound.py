"""Where the services may send: outbound HTTP is never aimed inside (#15 item 12).

A secretary writes a webhook or WeCom URL into the directory, and notify POSTs a signed
escalation there.  Unchecked, that URL could be ``http://169.254.169.254/…`` (a cloud's metadata
service, 100.100.100.200 on Alibaba Cloud), a loopback port or a host on the private network, and
the notification's state would tell whether the port answered.  So every outbound target is
resolved and *every* address it resolves to must be a public (globally routable) one, unless the
operator admits it with ``GRIDWORK_OUTBOUND_ALLOWED_TARGETS``: host names (matched exactly,
case-insensitive) and addresses or CIDRs, e.g. ``["127.0.0.1/32", "10.20.0.0/16",
"sms-gateway.internal"]``.

Three ways in, one rule (:class:`OutboundPolicy`):

* :class:`GuardedResolver`, aiohttp's resolver in notify's client: the addresses checked are the
  addresses connected to, so a name that resolves to a public address at a check and to a
  private one at the connection (DNS rebinding) is refused too; a literal IP in a URL is checked
  by :meth:`OutboundPolicy.check_url` before the request (aiohttp does not resolve those);
* :meth:`OutboundPolicy.check_url` also resolves and checks a host name (the hotline feedback
  client, a PUT of a recipient);
* :meth:`OutboundPolicy.check_literal` — no DNS — for a fast answer at the edge.

A refusal is a :class:`TargetRefused` with a short, fixed reason ("loopback address", "private
address", …): the caller records that, never a target's own error text.  Redirects are never
followed and answers are read up to :data:`MAX_ANSWER_BYTES` (:func:`read_capped`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The most of an answer any outbound call reads (a receiver's 2xx body is not needed; WeCom's JSON is small).
MAX_ANSWER_BYTES = 64 * 1024

#: What the local stack and the demo admit when the operator set nothing: their receivers on loopback.
LOOPBACK_TARGETS = ("127.0.0.0/8", "::1/128", "localhost")


class TargetRefused(Exception):
    """An outbound target that may not be reached; ``reason`` is short and fixed, safe to store and show.

    ``permanent`` is False only when the host did not resolve (DNS may answer later).
    """

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def classify(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached by default, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return classify(address.ipv4_mapped)
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local or metadata address"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_multicast:
        return "multicast address"
    if address.is_private:
        return "private address"
    if not address.is_global:  # shared address space (100.64/10, Alibaba's metadata), reserved ranges
        return "non-public address"
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Which outbound targets are admitted: public addresses, plus the operator's allow-list."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> OutboundPolicy:
        """From ``GRIDWORK_OUTBOUND_ALLOWED_TARGETS``'s entries: each an address, a CIDR or a host name."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def _allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)

    def check_address(self, address: str) -> None:
        """Refuse ``address`` (an IP's text) unless it is public or admitted."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise TargetRefused("unresolvable address") from None
        reason = classify(ip)
        if reason is not None and not self._allowed(ip):
            raise TargetRefused(reason)

    def host_admitted(self, host: str) -> bool:
        """Whether ``host`` is on the allow-list by name (its addresses are then not checked)."""
        return host.lower().rstrip(".") in self.hosts

    def check_literal(self, url: str) -> str:
        """Check what can be checked without DNS: the URL's scheme, host, and the host when it is an IP.

        Returns the host name (lower case, brackets removed) for a resolving check.
        """
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018  (a bad port raises here)
        except ValueError:
            raise TargetRefused("malformed URL") from None
        if parts.scheme not in ("http", "https"):
            raise TargetRefused("not an http(s) URL")
        if not host:
            raise TargetRefused("no host")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused("credentials in the URL")
        if self.host_admitted(host):
            return host
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return host
        self.check_address(host)
        return host

    async def check_url(self, url: str, *, timeout: float = 5.0) -> None:
        """Refuse ``url`` unless every address its host resolves to is public or admitted."""
        host = self.check_literal(url)
        if self.host_admitted(host):
            return
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            return  # a literal address, checked above
        except ValueError:
            pass
        port = urlsplit(url).port or 443
        for address in await _resolve(host, port, timeout=timeout):
            self.check_address(address)


async def _resolve(host: str, port: int, *, timeout: float) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), timeout
        )
    except (OSError, TimeoutError):
        raise TargetRefused("host does not resolve", permanent=False) from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused("host does not resolve", permanent=False)
    return addresses


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a host any of whose addresses the policy does not admit.

    The connector connects to the addresses returned here, so what was checked is what is reached.
    """

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if not self.policy.host_admitted(host):
            for result in results:
                self.policy.check_address(result["host"])
        return results

    async def close(self) -> None:
        await self.inner.close()


def guarded_connector(policy: OutboundPolicy, **kwargs: Any) -> aiohttp.TCPConnector:
    """An aiohttp connector whose every connection goes to addresses ``policy`` admits."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(policy), **kwargs)


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """At most ``limit`` bytes of an answer; a longer one is cut and its connection dropped, not drained."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = await response.content.read(limit + 1 - len(buf))
        if not chunk:
            return bytes(buf)
        buf += chunk
    response.close()  # the rest is never read: the connection is not reused
    return bytes(buf[:limit])
