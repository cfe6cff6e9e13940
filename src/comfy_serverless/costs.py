"""What an execution cost, from configured prices (spec §1.3 `cost_breakdown`):

- `gpu_compute` = measured `gpu_time` (ComfyUI's own time on the prompt) times the price per
  GPU-second of the GPU type that ran it (`gpu_price_per_second`, by type, with `default`
  for types not listed);
- `storage` = the bytes stored (final and intermediate outputs) times `storage_price_per_gb`;
- `bandwidth` = the bytes of the final outputs, delivered once times `bandwidth_price_per_gb`.

GB are 10^9 bytes, as clouds bill them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.store.records import ExecutionRecord, OutputRecord

__all__ = ["Prices", "cost_breakdown"]

_GB = 1e9
_DIGITS = 6


@dataclass(frozen=True)
class Prices:
    gpu_per_second: Mapping[str, float] = field(default_factory=dict)
    storage_per_gb: float = 0.0
    bandwidth_per_gb: float = 0.0
    currency: str = "USD"

    def gpu_rate(self, gpu_type: str | None) -> float:
        by_type = {name.lower(): price for name, price in self.gpu_per_second.items()}
        return by_type.get((gpu_type or "").lower(), by_type.get("default", 0.0))


def _gpu_type(execution: ExecutionRecord) -> str | None:
    allocation = execution.resource_allocation or {}
    gpu_type = allocation.get("gpu_type")
    return str(gpu_type) if gpu_type else None


def cost_breakdown(execution: ExecutionRecord, outputs: Sequence[OutputRecord],
                   prices: Prices) -> dict[str, Any]:
    gpu_type = _gpu_type(execution)
    gpu_seconds = execution.gpu_time or 0.0
    stored = sum(output.size_bytes for output in outputs)
    delivered = sum(output.size_bytes for output in outputs if not output.intermediate)
    parts = {
        "gpu_compute": gpu_seconds * prices.gpu_rate(gpu_type),
        "storage": stored / _GB * prices.storage_per_gb,
        "bandwidth": delivered / _GB * prices.bandwidth_per_gb,
    }
    return {
        **{name: round(value, _DIGITS) for name, value in parts.items()},
        "total": round(sum(parts.values()), _DIGITS),
        "currency": prices.currency,
        "gpu_type": gpu_type,
        "gpu_seconds": round(gpu_seconds, 3),
        "stored_bytes": stored,
        "delivered_bytes": delivered,
    }
