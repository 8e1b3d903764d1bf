"""Which addresses a webhook may be posted to: public ones only, unless allowed otherwise."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
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


async def check_target(url: str, *, allow_private: bool) -> None:
    """Resolves the URL's host and refuses it when any of its addresses is loopback,
    private, link-local or otherwise not public (unless `allow_private`)."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise TargetRefused(f"not an http(s) URL: {url}")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise TargetRefused(f"{host} resolves to {address}, which is not a public address")
