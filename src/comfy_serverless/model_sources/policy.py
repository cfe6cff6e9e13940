"""Who may name which model source, and with what credentials.

- The tier's `model_sources` allowlist (host globs, `fnmatch` style, matched against the
  lower-case host; `s3://<bucket-glob>` entries for s3 sources). It defaults to nothing,
  so an operator opts in.
- The SSRF rules of webhooks and input images (`webhooks/ssrf.py`), checked before any
  connection; the addresses that passed are the only ones connected to.
- Credentials per host (a header, typically `Authorization`) from the operator's settings.
  A `Secret` never shows its value in a repr, a str, a log line or an error message; only
  `reveal()` gives it, when the request's headers are built.
- `require_model_hashes`: when `required_hashes` is set, a model whose sha256 is not in it
  is refused (a pinned one before download, any other once its bytes are hashed).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from comfy_serverless.model_sources.errors import HashNotAllowed, SourceRefused
from comfy_serverless.model_sources.sources import ModelSource
from comfy_serverless.webhooks.ssrf import (
    CheckedUrl,
    UnsafeDestination,
    WebhookPolicy,
    check_destination,
)

__all__ = ["HostCredential", "Secret", "SourcePolicy", "check_source", "host_allowed",
           "hub_credential"]


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether a tier whose `model_sources` are `allowed_hosts` may fetch from `host` (a
    source's host: the URL's host name, or `s3://<bucket>`). No host (a cached file whose
    source is not known) is never allowed, not even by `*`."""
    if not host:
        return False
    lowered = host.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in allowed_hosts)


@dataclass(frozen=True)
class Secret:
    """A credential's value; shown as `***` everywhere but `reveal()`."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class HostCredential:
    """A header sent only to hosts matching `host` (a glob), never to any other (the
    allowlist may be wider than the credentials)."""

    host: str
    value: Secret
    header: str = "Authorization"

    def matches(self, host: str) -> bool:
        return fnmatch.fnmatchcase(host.lower(), self.host.lower())


def hub_credential(endpoint: str, token: Secret) -> HostCredential:
    """The Hugging Face token as a bearer credential for its endpoint's host."""
    host = urlsplit(endpoint).hostname or ""
    return HostCredential(host, Secret(f"Bearer {token.reveal()}"))


@dataclass(frozen=True)
class SourcePolicy:
    """Everything that decides whether a source may be fetched, for one tier."""

    destinations: WebhookPolicy = field(default_factory=WebhookPolicy)
    allowed_hosts: tuple[str, ...] = ()
    credentials: tuple[HostCredential, ...] = ()
    required_hashes: frozenset[str] | None = None

    def check_host(self, source: ModelSource) -> None:
        """SourceRefused unless the tier's allowlist names the source's host."""
        host = source.host.lower()
        if not host_allowed(host, self.allowed_hosts):
            raise SourceRefused(f"the model source host {host!r} is not in this tier's "
                                "model_sources allowlist")

    def check_hash(self, sha256: str) -> None:
        """HashNotAllowed when `require_model_hashes` is on and `sha256` is not listed."""
        if self.required_hashes is not None and sha256 not in self.required_hashes:
            raise HashNotAllowed(f"the model's sha256 {sha256} is not in the operator's "
                                 "allowlist (require_model_hashes)")

    def headers_for(self, host: str) -> dict[str, str]:
        """The configured credential headers for `host` (the first match per header)."""
        headers: dict[str, str] = {}
        for credential in self.credentials:
            if credential.matches(host):
                headers.setdefault(credential.header, credential.value.reveal())
        return headers


async def check_source(source: ModelSource, policy: SourcePolicy) -> CheckedUrl | None:
    """Refuse, before any connection, a source outside the allowlist or one whose host the
    SSRF rules refuse. Returns the checked addresses of an http source (connect to exactly
    those); None for s3, whose endpoint is the operator's own."""
    policy.check_host(source)
    if source.sha256 is not None:
        policy.check_hash(source.sha256)
    if source.url is None:
        return None
    try:
        return await check_destination(source.url, policy.destinations)
    except UnsafeDestination as exc:
        raise SourceRefused(f"the model source {source.display} is refused: {exc}") from exc
