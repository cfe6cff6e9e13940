"""What the edge learns of a request's key, kept in its scope for the layers after it.

The key gate (api/edge.py, or the CurrentKey dependency) stores the authenticated key and its
rate-limit decision here; every answer to that request, errors included, carries the
decision's X-RateLimit-* headers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from comfy_serverless.access.errors import rate_limit_headers
from comfy_serverless.access.rate_limit import RateDecision

__all__ = ["AUTHENTICATED_KEY_STATE", "RATE_DECISION_STATE", "rate_headers"]

RATE_DECISION_STATE = "rate_decision"
AUTHENTICATED_KEY_STATE = "api_key"


def rate_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """The X-RateLimit-* headers of the request's key, or none for a request without one."""
    decision = scope.get("state", {}).get(RATE_DECISION_STATE)
    if isinstance(decision, RateDecision):
        return rate_limit_headers(decision, time.time())
    return {}
