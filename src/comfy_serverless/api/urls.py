"""The base of every absolute URL an answer carries (download URLs, documentation_url).

Never the request's own Host header unless it was vetted: `public_base_url` when set; else,
when `trusted_hosts` is set (so the edge refused every other Host), the request's base URL;
else the address `serve` binds. A client can then never make the service hand out links to
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
        return str(HTTPConnection(scope).base_url).rstrip("/")
    return settings.base_url()
