"""Where this service may connect on a tenant's behalf (webhooks, input images, model
sources): http(s) only, https unless configured otherwise, and only to public addresses.

"Public" is read from the IANA special-purpose address registries, as Python's `ipaddress`
carries them (`is_global`), never from a hand list: carrier-grade NAT (100.64.0.0/10, where
cloud metadata services live), loopback, private, link-local, documentation, benchmarking,
multicast and reserved ranges are all refused. An IPv6 address that embeds an IPv4 one
(IPv4-mapped, 6to4, Teredo, NAT64 64:ff9b::/96) is public only when the IPv4 address it
embeds is public too; IPv4-compatible ones (::/96) are reserved. The operator's allowed
networks are the only exception.

A URL is parsed once, for every field that carries one, by `outbound_urls.parse_url`: a
malformed URL is an UnsafeDestination, never a crash, and numeric host spellings are read as
the IPv4 address that a resolver would make of them.

`check_destination` resolves the host once and returns the addresses that passed, so that a
caller connects to exactly those (see `outbound.py`) and a second DNS answer (rebinding)
can never point the connection elsewhere. Nothing here ever connects anywhere.

`check_webhook_url` is the one check of a webhook URL a client gives (an execution's, at
submit, and a registered endpoint's): its refusal is the API's 400 INVALID_WEBHOOK_URL.

A lookup runs in this module's own bounded thread pool (`_RESOLVER_THREADS`), never in the
event loop's default one (which also serves storage and output conversion), and within
`policy.resolve_timeout`: a tenant's name server that never answers makes its own URLs fail
after that long, and holds at most the resolver's threads (each until the system resolver
gives up), never the threads of storage or output conversion. Other tenants' lookups share
those threads: while all are held, theirs wait and fail after the timeout as well.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from comfy_serverless.errors import ApiError
from comfy_serverless.outbound_urls import (
    IPAddress,
    OutboundUrl,
    UnsafeDestination,
    parse_url,
    plain_address,
)

# UnsafeDestination and IPAddress are named here too: check_destination raises the one and
# returns the other.
__all__ = ["CheckedUrl", "IPAddress", "InvalidWebhookUrl", "UnsafeDestination",
           "WebhookPolicy", "check_destination", "check_webhook_url", "is_public"]

# Entries of the IANA special-purpose registries that are not globally reachable and that
# the `ipaddress` of Python 3.11 does not yet carry (CPython 3.12.4+ and 3.13 do): the whole
# IETF protocol assignments block, the deprecated 6to4 relay anycast, deprecated site-local
# IPv6, the IPv6 documentation block of RFC 9637 and SRv6 SIDs.
_REGISTRY_ADDITIONS = tuple(ipaddress.ip_network(network) for network in (
    "192.0.0.0/24", "192.88.99.0/24", "fec0::/10", "3fff::/20", "5f00::/16"))
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_RESOLVER_THREADS = 16


@functools.cache
def _resolver_pool() -> ThreadPoolExecutor:
    """The threads that run getaddrinfo, made on first use and kept for the process."""
    return ThreadPoolExecutor(_RESOLVER_THREADS, thread_name_prefix="dns")


@dataclass(frozen=True)
class WebhookPolicy:
    require_https: bool = True
    allowed_networks: tuple[str, ...] = ()
    resolve_timeout: float = 5.0

    def allows(self, address: IPAddress) -> bool:
        return any(address in ipaddress.ip_network(network, strict=False)
                   for network in self.allowed_networks)


@dataclass(frozen=True)
class CheckedUrl:
    """A URL whose host passed the policy, with the addresses to connect to (no second
    lookup)."""

    target: OutboundUrl
    addresses: tuple[IPAddress, ...]


def _tunnelled_ipv4(address: ipaddress.IPv6Address) -> Iterator[ipaddress.IPv4Address]:
    """The IPv4 addresses that a 6to4 or Teredo address carries."""
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo


def is_public(address: IPAddress) -> bool:
    """Globally reachable by the IANA registries, and so is every IPv4 address it embeds
    (a NAT64 address of the well-known prefix is exactly as public as its IPv4 address)."""
    address = plain_address(address)
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_WELL_KNOWN:
        return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if not address.is_global or address.is_multicast or address.is_reserved:
        return False
    if any(address in network for network in _REGISTRY_ADDITIONS):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return all(is_public(inner) for inner in _tunnelled_ipv4(address))
    return True


async def _resolve(target: OutboundUrl, timeout: float) -> list[IPAddress]:
    if target.address is not None:
        return [target.address]
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, target.host, target.port,
                               type=socket.SOCK_STREAM)
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.run_in_executor(_resolver_pool(), lookup)
    except TimeoutError as exc:
        raise UnsafeDestination(
            f"the host {target.host!r} did not resolve within {timeout:g}s") from exc
    except (OSError, UnicodeError) as exc:
        raise UnsafeDestination(f"the host {target.host!r} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _refused(address: IPAddress, policy: WebhookPolicy) -> bool:
    return not (is_public(address) or policy.allows(address))  # the cheap test first


async def check_destination(url: str, policy: WebhookPolicy) -> CheckedUrl:
    """Raise UnsafeDestination unless `url` may be called; returns the addresses its host
    resolved to, so that a caller can connect to exactly those (no second lookup)."""
    target = parse_url(url)
    if target.scheme != "https" and policy.require_https:
        raise UnsafeDestination("the URL must use https")
    resolved = await _resolve(target, policy.resolve_timeout)
    addresses = [plain_address(address) for address in resolved]
    if not addresses:
        raise UnsafeDestination(f"the host {target.host!r} does not resolve")
    for address in addresses:
        if _refused(address, policy):
            raise UnsafeDestination(
                f"the host {target.host!r} resolves to {address}, an internal address (not "
                "a public one by the IANA registries)")
    return CheckedUrl(target, tuple(addresses))


class InvalidWebhookUrl(ApiError):
    status_code = 400
    error_code = "INVALID_WEBHOOK_URL"


async def check_webhook_url(url: str | None, policy: WebhookPolicy, *, field: str) -> None:
    """Refuse, before any connection, a webhook URL that is malformed, not https, or that
    resolves to an address that is not public (unless allowlisted); the 400 names `field`."""
    if url is None:
        return
    try:
        await check_destination(url, policy)
    except UnsafeDestination as exc:
        raise InvalidWebhookUrl(f"Webhook URL refused ({field}): {exc}",
                                {"field": field, "webhook_url": url[:2048]}) from exc
