"""The spec's validation rules (§5.1), with its numbers as defaults; all configurable."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

__all__ = ["ValidationRules"]


@dataclass(frozen=True)
class ValidationRules:
    max_nodes: int = 100
    max_connections: int = 500
    max_execution_time: int = 3600
    max_string_length: int = 10_000
    max_numeric_value: float = 1_000_000
    numeric_limit_exemptions: tuple[str, ...] = ("seed", "noise_seed", "color")
    allowed_url_schemes: tuple[str, ...] = ("https",)
    max_image_bytes: int = 50 * 1024 * 1024
    supported_image_formats: tuple[str, ...] = ("png", "jpg", "webp")
    node_blacklist: tuple[str, ...] = ("ExecuteCode", "SystemCommand")
    node_whitelist: tuple[str, ...] = ()
    custom_nodes_enabled: bool = True
    custom_nodes_require_verification: bool = True
    verified_node_packs: tuple[str, ...] = ()
    max_input_depth: int = 32
    max_filename_prefix_length: int = 200
    max_node_inputs: int = 256
    max_input_overrides: int = 100
    allow_model_savers: bool = False

    def with_verified_packs(self, packs: Iterable[str]) -> ValidationRules:
        """These rules with `packs` counted as verified too (the packs that workers publish
        as scanned clean), beside the configured `verified_node_packs`."""
        extra = set(packs) - set(self.verified_node_packs)
        if not extra:
            return self
        return replace(self, verified_node_packs=(*self.verified_node_packs, *sorted(extra)))
