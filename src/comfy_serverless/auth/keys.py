"""API keys: `comfyui_sk_…` (secret) and `comfyui_pk_…` (public).

A key is 192 random bits. Only its SHA-256 is stored (a key this long needs no slow hash);
its first characters are a public lookup prefix, so authentication is one indexed read and
one constant-time comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from comfy_serverless.errors import AuthenticationFailed
from comfy_serverless.store.records import ApiKeyRecord
from comfy_serverless.store.store import Store

__all__ = ["TOUCH_INTERVAL", "IssuedKey", "KeyKind", "NewSecret", "authenticate", "issue_key",
           "lookup_prefix", "new_secret", "parse_bearer", "verify"]

KeyKind = Literal["secret", "public"]
_TYPE_PREFIX: dict[KeyKind, str] = {"secret": "comfyui_sk_", "public": "comfyui_pk_"}
_LOOKUP_CHARS = 12
_SECRET_BYTES = 24
# last_used_at is written at most this often per key (and per API process), so that it
# costs no write per request: it is exact to within this many seconds.
TOUCH_INTERVAL = 60.0


@dataclass(frozen=True)
class IssuedKey:
    plaintext: str
    record: ApiKeyRecord


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def lookup_prefix(plaintext: str) -> str | None:
    for type_prefix in _TYPE_PREFIX.values():
        if plaintext.startswith(type_prefix):
            return plaintext[: len(type_prefix) + _LOOKUP_CHARS]
    return None


@dataclass(frozen=True)
class NewSecret:
    plaintext: str
    prefix: str
    secret_hash: str


def new_secret(kind: KeyKind) -> NewSecret:
    plaintext = _TYPE_PREFIX[kind] + secrets.token_urlsafe(_SECRET_BYTES)
    prefix = lookup_prefix(plaintext)
    assert prefix is not None
    return NewSecret(plaintext, prefix, _hash(plaintext))


def issue_key(kind: KeyKind, tier: str, *, is_admin: bool = False, name: str | None = None,
              custom_limits: dict[str, int | None] | None = None) -> IssuedKey:
    secret = new_secret(kind)
    record = ApiKeyRecord(
        id=f"key_{secrets.token_hex(8)}",
        prefix=secret.prefix,
        secret_hash=secret.secret_hash,
        kind=kind,
        tier=tier,
        is_admin=is_admin,
        name=name,
        created_at=time.time(),
        custom_limits=custom_limits or None,
    )
    return IssuedKey(secret.plaintext, record)


def parse_bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("Authorization must be 'Bearer {api_key}'")
    return token.strip()


def verify(record: ApiKeyRecord | None, plaintext: str) -> ApiKeyRecord:
    """The key, if `plaintext` is its secret (compared in constant time) and it is live."""
    if record is None or not hmac.compare_digest(record.secret_hash.encode(),
                                                    _hash(plaintext).encode()):
        raise AuthenticationFailed()
    if record.revoked_at is not None:
        raise AuthenticationFailed("This API key has been revoked")
    return record


async def authenticate(store: Store, plaintext: str) -> ApiKeyRecord:
    """Uncached: one read of the key's row (the CLI, and tools without an API process's
    KeyAuthenticator)."""
    prefix = lookup_prefix(plaintext)
    if prefix is None:
        raise AuthenticationFailed()
    record = verify(await store.access.api_key_by_prefix(prefix), plaintext)
    now = time.time()
    if record.last_used_at is None or now - record.last_used_at > TOUCH_INTERVAL:
        await store.access.touch_api_key(record.id, now)
    return record
