"""The base of every absolute URL an answer carries (download URLs, documentation_url).

Never the request's own Host header unless it was vetted: `public_base_url` when set; else,
when the Host header names exactly one of the `trusted_hosts` (a wildcard entry, `*` or
`*.example.com`, admits a request at the edge but never vouches for a link), the request's
base URL; else the address `serve` binds. A client can then never make the service hand out links to
a host of its choosing.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import Scope

from comfy_serverless.settings import Settings

__all__ = ["public_base_url"]


def public_base_url(scope: Scope) -> str:
    settings: Settings = scope["app"].state.settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    if settings.trusted_hosts:
        base = HTTPConnection(scope).base_url
        named = {host.lower() for host in settings.trusted_hosts if "*" not in host}
        if (base.hostname or "").lower().removesuffix(".") in named:
            return str(base).rstrip("/")
    return settings.base_url()
