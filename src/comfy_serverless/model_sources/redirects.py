"""Following an http(s) source's redirects, each hop checked as the first one was.

huggingface.co answers a file download with a redirect to its CDN, so an `hf://` source on
the default endpoint needs this. The rules, one hop at a time:

- Only `301`, `302`, `303`, `307` and `308` with a `Location` are followed, as a `GET`
  with the same `Range` and `If-Range` (a resumed download resumes at the target). At most
  `MAX_REDIRECTS` (5) are followed; one more is a `ModelUnavailable` (not retryable).
- The `Location` is read against the hop's URL; one that carries user info or a control
  character is refused; a fragment is dropped.
- Every hop passes the SSRF rules (`webhooks/ssrf.check_destination` with the tier's
  destination policy) **before any connection to it**: its host is resolved again, every
  address checked (internal ones refused unless the operator allows their network), and the
  connection pinned to the addresses that passed; https only unless the policy allows
  http. A hop from https to plain http is refused whatever the policy (a downgrade would
  put the rest of the chain, and the bytes, in the clear on a network the source itself
  did not choose). A refused hop is `SourceRefused`.
- The tier's `model_sources` allowlist applies to the source's own URL, not to the hops it
  redirects to: the allowlist says which hosts a tier trusts to name its files; a CDN's host
  is rarely one an operator would list (or know). Where a hop may connect is the SSRF rules'
  business, as for the first.
- Credentials go only to the source's own origin (scheme, host and port), and only until
  the chain first leaves it: a hop to another origin carries none, even when a
  credential's host glob matches it (as curl without `--location-trusted`), nor does a hop
  that another origin sent back (that origin would choose what is fetched with them). A
  CDN's signed URL needs none, and a credential is never handed on because another host
  said so.

Messages name hops without their query string (a CDN's URL carries a signature).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from comfy_serverless.model_sources.errors import ModelUnavailable, SourceRefused
from comfy_serverless.model_sources.https_body import read_https
from comfy_serverless.model_sources.policy import SourcePolicy
from comfy_serverless.outbound_urls import OutboundUrl
from comfy_serverless.webhooks.ssrf import CheckedUrl, UnsafeDestination, check_destination

if TYPE_CHECKING:
    from comfy_serverless.model_sources.transfer import Body, Transport

__all__ = ["MAX_REDIRECTS", "read_following_redirects"]

MAX_REDIRECTS = 5


def read_following_redirects(body: Body, checked: CheckedUrl, policy: SourcePolicy,
                             transport: Transport, offset: int) -> None:
    """Append the source's bytes from `offset` on to the partial file, from wherever its
    URL redirects (from the download's worker thread)."""
    origin, on_origin = checked.target, True
    for _ in range(MAX_REDIRECTS + 1):
        on_origin = on_origin and _same_origin(checked.target, origin)
        headers = policy.headers_for(checked.target.host) if on_origin else {}
        location = read_https(body, checked, headers, transport, offset)
        if location is None:
            return
        checked = _checked_hop(body, _next_url(body, checked.target, location), policy)
    raise ModelUnavailable(f"{body.source.display} redirected more than {MAX_REDIRECTS} "
                           "times")


def _same_origin(hop: OutboundUrl, origin: OutboundUrl) -> bool:
    return (hop.scheme, hop.host, hop.port) == (origin.scheme, origin.host, origin.port)


def _shown(url: str) -> str:
    """A hop's URL for a message: no query string, no fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _next_url(body: Body, current: OutboundUrl, location: str) -> str:
    if any(ord(char) < 0x21 or char == "\x7f" for char in location):
        raise ModelUnavailable(f"{body.source.display} redirected to a malformed location")
    target = urljoin(current.url, location).partition("#")[0]
    try:
        has_user_info = urlsplit(target).username is not None
    except ValueError as exc:
        raise ModelUnavailable(f"{body.source.display} redirected to a malformed "
                               "location") from exc
    if has_user_info:
        raise SourceRefused(f"{body.source.display} redirected to a URL with user info")
    if current.scheme == "https" and urlsplit(target).scheme.lower() != "https":
        raise SourceRefused(f"{body.source.display} redirected from https to "
                            f"{_shown(target)}, which is refused: no downgrade from https")
    return target


def _checked_hop(body: Body, url: str, policy: SourcePolicy) -> CheckedUrl:
    """The hop's addresses, checked on the event loop (its resolver pool and timeout)
    before anything connects to them."""
    body.raise_if_stopped()
    checking = asyncio.run_coroutine_threadsafe(check_destination(url, policy.destinations),
                                                body.loop)
    try:
        return checking.result()
    except UnsafeDestination as exc:
        raise SourceRefused(f"{body.source.display} redirected to {_shown(url)}, which is "
                            f"refused: {exc}") from exc
