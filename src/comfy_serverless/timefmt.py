"""Times on the wire: UTC ISO-8601 with a `Z`, to the second."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utc_iso"]


def utc_iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
