"""Signed, expiring URLs for outputs on local disk: HMAC-SHA256 over the key and expiry."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from comfy_serverless.errors import SignedUrlRefused

__all__ = ["UrlSigner"]

FILES_ROUTE = "/files/"


class UrlSigner:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def signed_path(self, key: str, expires: int) -> str:
        """The path and query of the URL that serves `key` until `expires` (epoch seconds)."""
        return (
            f"{FILES_ROUTE}{quote(key)}?expires={expires}"
            f"&signature={self.signature(key, expires)}"
        )

    def verify(self, key: str, expires: int, signature: str, now: float) -> None:
        """Raise SignedUrlRefused unless the signature matches and has not expired."""
        if not hmac.compare_digest(self.signature(key, expires).encode(),
                                   signature.encode("utf-8", "surrogateescape")):
            raise SignedUrlRefused(
                "The download URL's signature does not match",
                {"reason": "signature_mismatch"},
            )
        if now > expires:
            raise SignedUrlRefused(
                "The download URL has expired", {"reason": "expired", "expired_at": expires}
            )
