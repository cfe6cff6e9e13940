"""Where a webhook may be sent, and input images fetched from: https only (unless configured
otherwise), and never to a private, loopback, link-local or otherwise internal address
unless an allowlist holds it.

The host is resolved when the URL is submitted and again before every delivery (DNS
rebinding). Nothing here ever connects to the address it checks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["IPAddress", "UnsafeDestination", "WebhookPolicy", "check_destination"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeDestination(ValueError):
    """A webhook URL this service refuses to call; the message says why."""


@dataclass(frozen=True)
class WebhookPolicy:
    require_https: bool = True
    allowed_networks: tuple[str, ...] = ()

    def allows(self, address: IPAddress) -> bool:
        return any(address in ipaddress.ip_network(network, strict=False)
                   for network in self.allowed_networks)


def _is_internal(address: IPAddress) -> bool:
    return (address.is_private or address.is_loopback or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeDestination(f"the host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _refused(addresses: Iterable[IPAddress], policy: WebhookPolicy) -> IPAddress | None:
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None) or address
        if _is_internal(mapped) and not policy.allows(mapped):
            return mapped
    return None


async def check_destination(url: str, policy: WebhookPolicy) -> list[IPAddress]:
    """Raise UnsafeDestination unless `url` may be called; returns the addresses its host
    resolved to, so that a caller can connect to exactly those (no second lookup)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeDestination("a webhook URL must be an absolute https:// URL")
    if parts.scheme != "https" and policy.require_https:
        raise UnsafeDestination("a webhook URL must use https")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await _resolve(parts.hostname, port)
    if (refused := _refused(addresses, policy)) is not None:
        raise UnsafeDestination(
            f"the host {parts.hostname!r} resolves to {refused}, an internal address")
    return addresses
