"""Tenant isolation of fetched models at submit: a file that a worker placed from its model
cache (`<12 hex>-<file name>`) may be named by a job only when the key's tier could fetch
one of the sources it came from (its `model_sources` allowlist). Otherwise the submit is
refused as any model outside the tier is, `403 MODEL_NOT_ALLOWED`, naming the input; the
catalog the job is then validated against leaves such files out (executions/catalogs.py),
so no hint offers them either.

A plain reading of every string input of the workflow and of the input overrides: the
placed names are specific enough (a hash prefix) that any input naming one names the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from comfy_serverless.access.errors import ModelNotAllowed
from comfy_serverless.access.tiers import Tier
from comfy_serverless.model_sources import host_allowed
from comfy_serverless.models.listing import HostCheck

__all__ = ["host_check", "refuse_hidden_models"]


def host_check(tier: Tier) -> HostCheck:
    """Whether `tier` may fetch from a host: who may see or name a fetched model (the model
    list, the catalog a job is validated against, preloads by model_id)."""
    allowed = tuple(tier.model_sources)
    return lambda host: host_allowed(host, allowed)


def _string_inputs(workflow: Mapping[str, Any], overrides: Mapping[str, Any]
                   ) -> Iterator[tuple[str, str]]:
    """(field, value) of each string input of the workflow and each string override."""
    for node_id, node in workflow.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        for name, value in (inputs or {}).items() if isinstance(inputs, Mapping) else ():
            if isinstance(value, str):
                yield f"workflow.{node_id}.inputs.{name}", value
    for name, value in overrides.items():
        if isinstance(value, str):
            yield f"input_overrides.{name}", value


def refuse_hidden_models(workflow: Mapping[str, Any], overrides: Mapping[str, Any],
                         hidden: frozenset[str], tier: Tier) -> None:
    """403 MODEL_NOT_ALLOWED when an input names a placed file the tier may not use."""
    if not hidden:
        return
    for field, value in _string_inputs(workflow, overrides):
        if value in hidden:
            raise ModelNotAllowed(
                f"The '{tier.name}' tier may not use the model named by {field}",
                {"field": field, "tier": tier.name,
                 "suggestion": "Name the model by a source on a host the operator lists in "
                               "the tier's model_sources, or use a published model file"})
