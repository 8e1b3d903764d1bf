"""Which addresses a webhook may be posted to: public ones only, unless allowed otherwise."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx


def check_url(url: str) -> str:
    """`url` if webhooks can be posted to it: http(s), a host, a port from 1 to 65535, and
    a URL the HTTP client takes; else ValueError saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a usable URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host")
    if port == 0:
        raise ValueError("the port must be from 1 to 65535")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a usable URL: {exc}") from None
    return url


class TargetRefused(Exception):
    """The URL's host resolves to an address webhooks may not reach."""


# A resolver: host and port -> the addresses they resolve to (the system's by default).
Resolver = Callable[[str, int], Awaitable[list[str]]]

# IPv6 ranges that carry an IPv4 address inside: NAT64 (RFC 6052 and RFC 8215), 6to4
# (RFC 3056), Teredo (RFC 4380) and the deprecated IPv4-compatible form. A gateway on the
# way turns them into the IPv4 address they embed, which may be loopback or private, while
# Python's `is_global` judges the IPv6 address; they are refused whatever they embed.
_EMBEDDED_IPV4 = tuple(
    ipaddress.IPv6Network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96")
)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: the URL as configured and the address checked for it, which
    the connection is made to (the host's name still in `Host` and in TLS's server name)."""

    url: str
    host: str
    address: str

    def request_url(self) -> httpx.URL:
        """The URL with the checked address in place of the host name."""
        return httpx.URL(self.url).copy_with(host=self.address)

    def headers(self) -> dict[str, str]:
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        if parts.scheme == "https":
            # The client pools connections by address: a TLS connection whose certificate was
            # checked for one host name must not carry another's request to the same address.
            return {"host": netloc, "connection": "close"}
        return {"host": netloc}

    def extensions(self) -> dict[str, str]:
        # httpcore verifies the certificate against the server name it sends.
        return {"sni_hostname": self.host} if urlsplit(self.url).scheme == "https" else {}


def refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why webhooks may not reach `address`, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal(address.ipv4_mapped)
        if any(address in net for net in _EMBEDDED_IPV4):
            return "an IPv6 address that embeds an IPv4 address"
    if not address.is_global or address.is_multicast:
        return "not a public address"
    return None


async def check_target(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> Target:
    """Resolves the URL's host once and refuses it when any of its addresses is loopback,
    private, link-local, embeds an IPv4 address or is otherwise not public (unless
    `allow_private`); the delivery then connects to the address checked here, so a name that
    resolves differently a moment later (DNS rebinding) cannot redirect it."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise TargetRefused(f"not an http(s) URL: {url}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused(f"not a usable URL: {exc}") from None
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolver(host, port)
        except OSError as exc:
            raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise TargetRefused(f"cannot resolve {host}: no address")
    checked = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not allow_private:
        for address in checked:
            why = refusal(address)
            if why is not None:
                raise TargetRefused(f"{host} resolves to {address}, which is {why}")
    return Target(url=url, host=host, address=str(checked[0]))


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    allow_private: bool,
    resolver: Resolver = system_resolver,
) -> httpx.Response:
    """Posts to `url` at the address `check_target` checked for it (one resolution)."""
    target = await check_target(url, allow_private=allow_private, resolver=resolver)
    return await client.post(
        target.request_url(),
        content=content,
        headers={**target.headers(), **headers},
        extensions=target.extensions(),
    )
