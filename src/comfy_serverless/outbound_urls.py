"""An outbound http(s) URL, read once: its parts and the one spelling of where it connects.

Every field that carries a URL a tenant gives (webhooks, input images, model sources) is
parsed here (`parse_url`): a malformed URL is an UnsafeDestination, never a crash. Numeric
host spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`) are read as the IPv4 address
that a resolver would make of them. This module is pure (no lookup, no policy, nothing of ours
imported), so that the store can key webhook deliveries by `destination_of` without reaching
up into `webhooks/`; the policy of where this service may connect is `webhooks/ssrf.py`'s.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

__all__ = ["IPAddress", "OutboundUrl", "UnsafeDestination", "destination_of", "parse_url",
           "plain_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")
_MAX_HOST_NAME = 253


class UnsafeDestination(ValueError):
    """A URL this service refuses to call; the message says why."""


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


def plain_address(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is; any other one as it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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
        host = str(plain_address(target.address))
    else:
        host = target.host.lower().removesuffix(".")
    host = f"[{host}]" if ":" in host else host
    return f"{target.scheme}://{host}:{target.port}"
