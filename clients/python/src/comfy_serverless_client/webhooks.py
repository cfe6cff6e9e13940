"""Verify a webhook delivery, by either of the two signatures the service sends
(docs/how-to/webhooks.md): `X-Webhook-Signature: sha256=<hex>` (spec §4.3), or the Standard
Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) when the secret
is base64 (`whsec_…`). Always verify the raw body, before parsing it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["verify_standard_webhook", "verify_webhook", "verify_webhook_signature"]

DEFAULT_TOLERANCE = 300  # seconds between the delivery's timestamp and now


def verify_webhook_signature(payload: str | bytes, signature: str, secret: str) -> bool:
    """The spec's function: HMAC-SHA256 of the raw body, as `sha256=<hex>`."""
    body = payload.encode() if isinstance(payload, str) else payload
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def verify_standard_webhook(payload: str | bytes, headers: Mapping[str, str], secret: str,
                            *, tolerance: float = DEFAULT_TOLERANCE,
                            now: float | None = None) -> bool:
    """Standard Webhooks: `v1,<base64>` signatures of `{id}.{timestamp}.{body}`, with the
    base64 secret (after `whsec_`), and a timestamp within `tolerance` s (no replays)."""
    lower = {name.lower(): value for name, value in headers.items()}
    message_id = lower.get("webhook-id", "")
    timestamp = lower.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return False
    body = payload.encode() if isinstance(payload, str) else payload
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.partition(",")[2] for part in lower.get("webhook-signature", "").split()
               if part.startswith("v1,")]
    return any(hmac.compare_digest(expected, signature) for signature in offered)


def verify_webhook(payload: str | bytes, headers: Mapping[str, str], secret: str) -> bool:
    """Either scheme: the Standard Webhooks headers when present, else
    X-Webhook-Signature."""
    lower = {name.lower(): value for name, value in headers.items()}
    if "webhook-signature" in lower:
        return verify_standard_webhook(payload, headers, secret)
    return verify_webhook_signature(payload, lower.get("x-webhook-signature", ""), secret)
