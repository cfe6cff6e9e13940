"""Where this service may connect on a tenant's behalf (webhooks, input images, model
sources): http(s) only, https unless configured otherwise, and only to public addresses.

"Public" is read from the IANA special-purpose address registries, as Python's `ipaddress`
carries them (`is_global`), never from a hand list: carrier-grade NAT (100.64.0.0/10, where
cloud metadata services live), loopback, private, link-local, documentation, benchmarking,
multicast and reserved ranges are all refused. An IPv6 address that embeds an IPv4 one
(IPv4-mapped, 6to4, Teredo, NAT64 64:ff9b::/96) is public only when the IPv4 address it
embeds is public too; IPv4-compatible ones (::/96) are reserved. The operator's allowed
networks are the only exception.

A URL is parsed here, once (`parse_url`), for every field that carries one: a malformed URL
is an UnsafeDestination, never a crash. Numeric host spellings (`2130706433`, `0x7f.1`,
`0177.0.0.1`, `127.1`) are read as the IPv4 address that a resolver would make of them.

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
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from comfy_serverless.errors import ApiError

__all__ = ["CheckedUrl", "IPAddress", "InvalidWebhookUrl", "OutboundUrl", "UnsafeDestination",
           "WebhookPolicy", "check_destination", "check_webhook_url", "destination_of",
           "is_public", "parse_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Entries of the IANA special-purpose registries that are not globally reachable and that
# the `ipaddress` of Python 3.11 does not yet carry (CPython 3.12.4+ and 3.13 do): the whole
# IETF protocol assignments block, the deprecated 6to4 relay anycast, deprecated site-local
# IPv6, the IPv6 documentation block of RFC 9637 and SRv6 SIDs.
_REGISTRY_ADDITIONS = tuple(ipaddress.ip_network(network) for network in (
    "192.0.0.0/24", "192.88.99.0/24", "fec0::/10", "3fff::/20", "5f00::/16"))
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")
_MAX_HOST_NAME = 253
_RESOLVER_THREADS = 16


@functools.cache
def _resolver_pool() -> ThreadPoolExecutor:
    """The threads that run getaddrinfo, made on first use and kept for the process."""
    return ThreadPoolExecutor(_RESOLVER_THREADS, thread_name_prefix="dns")


class UnsafeDestination(ValueError):
    """A URL this service refuses to call; the message says why."""


@dataclass(frozen=True)
class WebhookPolicy:
    require_https: bool = True
    allowed_networks: tuple[str, ...] = ()
    resolve_timeout: float = 5.0

    def allows(self, address: IPAddress) -> bool:
        return any(address in ipaddress.ip_network(network, strict=False)
                   for network in self.allowed_networks)


@dataclass(frozen=True)
class OutboundUrl:
    """A well-formed absolute http(s) URL. `host` is ASCII; when it is an IP literal (in any
    spelling), `address` holds it and `host` is its canonical form."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress | None

    @property
    def authority(self) -> str:
        """The Host header's value: the (ASCII) host, with the port unless it is the
        scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class CheckedUrl:
    """A URL whose host passed the policy, with the addresses to connect to (no second
    lookup)."""

    target: OutboundUrl
    addresses: tuple[IPAddress, ...]


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is; any other one as it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _tunnelled_ipv4(address: ipaddress.IPv6Address) -> Iterator[ipaddress.IPv4Address]:
    """The IPv4 addresses that a 6to4 or Teredo address carries."""
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo


def is_public(address: IPAddress) -> bool:
    """Globally reachable by the IANA registries, and so is every IPv4 address it embeds
    (a NAT64 address of the well-known prefix is exactly as public as its IPv4 address)."""
    address = _plain(address)
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_WELL_KNOWN:
        return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if not address.is_global or address.is_multicast or address.is_reserved:
        return False
    if any(address in network for network in _REGISTRY_ADDITIONS):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return all(is_public(inner) for inner in _tunnelled_ipv4(address))
    return True


def _split(url: str) -> tuple[SplitResult, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination(f"the URL is malformed ({exc})") from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeDestination("the URL must be an absolute http(s):// URL with a host")
    return parts, port or (443 if parts.scheme == "https" else 80)


def _ip_literal(host: str) -> IPAddress | None:
    if "%" in host:
        raise UnsafeDestination("an IPv6 zone id (%…) is not allowed in a URL's host")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host) and host[-1:].isalnum():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _ascii_host_name(host: str) -> str:
    """The host name as DNS sees it (an internationalised one in its xn-- form)."""
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UnsafeDestination(f"the host {host[:80]!r} is not a valid host name") from exc
    _check_host_name(host)
    return host


def _check_host_name(host: str) -> None:
    name = host.removesuffix(".")
    labels = name.split(".")
    if len(name) > _MAX_HOST_NAME or not all(_LABEL.match(label) for label in labels):
        raise UnsafeDestination(
            f"the host {host[:80]!r} is not a valid host name (each dot-separated label is "
            "1-63 letters, digits or hyphens)")


def parse_url(url: str) -> OutboundUrl:
    """The URL's parts, or UnsafeDestination when it is not a well-formed http(s) URL."""
    if any(ord(char) < 0x21 or char == "\x7f" for char in url):
        raise UnsafeDestination("the URL contains spaces or control characters")
    parts, port = _split(url)
    host = parts.hostname or ""
    address = _ip_literal(host)
    host = _ascii_host_name(host) if address is None else str(address)
    return OutboundUrl(url, parts.scheme, host, port, address)


def destination_of(url: str) -> str:
    """Where a URL connects, one spelling per receiver: scheme://host:port, the host in
    lower-case ASCII without a trailing dot, the port explicit; user info, path, query and
    fragment dropped. A URL that does not parse (refused at delivery anyway) keeps its text
    up to the first '/' after the scheme, lower-cased."""
    try:
        target = parse_url(url)
    except UnsafeDestination:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{re.split(r'[/?#]', rest, maxsplit=1)[0]}".lower()
    if target.address is not None:  # an IPv4-mapped IPv6 address is the IPv4 one
        host = str(_plain(target.address))
    else:
        host = target.host.lower().removesuffix(".")
    host = f"[{host}]" if ":" in host else host
    return f"{target.scheme}://{host}:{target.port}"


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
    addresses = [_plain(address) for address in await _resolve(target, policy.resolve_timeout)]
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
