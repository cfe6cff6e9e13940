"""Tenant isolation of fetched models at submit: a file that a worker placed from its model
cache (`<12 hex>-<file name>`, `loader_inputs.placed_name`) may be named by a job only when
a current record of its sources names one that the key's tier could fetch (its
`model_sources` allowlist). Deny by default: any value of that shape that no record allows
(a hidden file, or no file at all) is refused with the answer a file on no worker gets,
`422 WORKFLOW_NOT_RUNNABLE` "Model '…' is not on any worker", so that the answer never
tells whether another tenant fetched it. The catalog the job is then validated against
leaves such options out too (executions/catalogs.py), and the hint here names only the
placed files the tier may use, so no hint offers them.

A plain reading of every string input of the workflow and of the input overrides: the
placed names are specific enough (a hash prefix) that any input naming one names the file,
also where no catalog is known yet (validation then checks no options).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from comfy_serverless.access.tiers import Tier
from comfy_serverless.loader_inputs import is_placed_name
from comfy_serverless.model_sources import host_allowed
from comfy_serverless.models.listing import HostCheck
from comfy_serverless.validation.files import unwrapped
from comfy_serverless.validation.findings import Findings, nearest

__all__ = ["host_check", "refuse_unusable_placed_names"]


def host_check(tier: Tier) -> HostCheck:
    """Whether `tier` may fetch from a host: who may see or name a fetched model (the model
    list, the catalog a job is validated against, preloads by model_id)."""
    allowed = tuple(tier.model_sources)
    return lambda host: host_allowed(host, allowed)


def _string_inputs(workflow: Mapping[str, Any], overrides: Mapping[str, Any]
                   ) -> Iterator[tuple[str | None, str, str]]:
    """(node id, input name, value) of each string input of the workflow and each string
    override (whose node id is None), as ComfyUI reads it: `{"__value__": v}` unwrapped."""
    for node_id, node in workflow.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        for name, value in (inputs or {}).items() if isinstance(inputs, Mapping) else ():
            if isinstance(value := unwrapped(value), str):
                yield str(node_id), str(name), value
    for name, value in overrides.items():
        if isinstance(value := unwrapped(value), str):
            yield None, str(name), value


def refuse_unusable_placed_names(workflow: Mapping[str, Any], overrides: Mapping[str, Any],
                                 usable: frozenset[str]) -> None:
    """422 WORKFLOW_NOT_RUNNABLE, as for a file on no worker, when an input names a placed
    name outside `usable` (the placed files the key's tier may use)."""
    findings = Findings()
    for node_id, name, value in _string_inputs(workflow, overrides):
        if is_placed_name(value) and value not in usable:
            findings.cannot_run(node_id, f"Model '{value}' for '{name}' is not on any worker",
                                _hint(value, usable))
    findings.raise_if_any()


def _hint(value: str, usable: frozenset[str]) -> str:
    """The nearest placed names the tier may use (a misspelt one of its own files), as
    validation suggests the nearest option: never one it may not use."""
    close = nearest(value, sorted(usable))
    return (f"Nearest: {', '.join(close)}" if close else
            "Choose a file the model list shows, or name the model by its source")
