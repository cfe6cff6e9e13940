"""The retry policy shared by the executor (retryable failures) and the rescuer (lost workers)."""

from __future__ import annotations

__all__ = ["retry_delay"]

_MAX_DELAY = 30.0


def retry_delay(attempt: int) -> float:
    """Backoff before attempt `attempt + 1`: 1 s, 2 s, 4 s … at most 30 s."""
    return float(min(2.0 ** max(attempt - 1, 0), _MAX_DELAY))
