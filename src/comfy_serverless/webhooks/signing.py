"""Webhook signatures, two ways, over the exact bytes sent:

- `X-Webhook-Signature: sha256=<hex>`: HMAC-SHA256 of the raw body with the secret's UTF-8
  bytes, which the spec's `verify_webhook_signature(payload, signature, secret)` accepts;
- Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`):
  HMAC-SHA256 of `{id}.{timestamp}.{body}` with the base64-decoded secret (a `whsec_` prefix is
  dropped first). Sent when the secret is valid base64, as that standard requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["signature_headers"]


def _standard_key(secret: str) -> bytes | None:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return None


def signature_headers(body: bytes, secret: str | None, event_id: str, timestamp: int
                      ) -> dict[str, str]:
    headers = {"webhook-id": event_id, "webhook-timestamp": str(timestamp)}
    if not secret:
        return headers
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers["X-Webhook-Signature"] = f"sha256={digest}"
    key = _standard_key(secret)
    if key:
        signed = f"{event_id}.{timestamp}.".encode() + body
        mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        headers["webhook-signature"] = f"v1,{mac}"
    return headers
