"""The model sources of a submit: every loader input whose value names a model source (an
https URL, an s3 object, a Hugging Face file) is parsed, pinned to the request's sha256 for
it, and checked against the key's tier (`model_sources` host globs), the operator's
`require_model_hashes` and the SSRF rules of input images, all before anything connects to
the source (the host is looked up, as a webhook URL's is, and not called). What passes is
kept in the execution's options for the worker, which fetches each source (worker/
model_fetch.py), and each source joins the execution's required models as
`sha256:<hex>` (pinned) or `source:<key>`, which a worker that has it in its model cache
publishes among its models on disk (model affinity).

Refusals, each naming the input as `<node_id>.inputs.<input>`:
- a value that is not a readable source: 400 WORKFLOW_VALIDATION_FAILED;
- a `model_sources` entry that no loader input names: 400 INVALID_REQUEST;
- a host outside the tier's allowlist, an internal address, a sha256 outside the operator's
  allowlist: 403 MODEL_NOT_ALLOWED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from comfy_serverless.access.errors import ModelNotAllowed
from comfy_serverless.access.tiers import Tier
from comfy_serverless.errors import ApiError, RequestInvalid
from comfy_serverless.model_sources import (
    HashNotAllowed,
    MalformedSource,
    ModelSource,
    SourcePolicy,
    SourceRefused,
    affinity_token,
    check_source,
    parse_source,
)
from comfy_serverless.settings import Settings
from comfy_serverless.store.options import ModelSourceInput, ModelSourceOptions
from comfy_serverless.store.records import NewExecution
from comfy_serverless.validation.findings import ValidationProblem, workflow_invalid
from comfy_serverless.validation.model_references import SourceInput, model_source_inputs

__all__ = ["checked_model_sources", "with_model_sources"]

_SOURCE_FORMS = ("Give an https:// URL, s3://<bucket>/<key> or "
                 "hf://<owner>/<repo>/<path>[@revision], optionally with #sha256=<64 hex>")


async def with_model_sources(execution: NewExecution, pins: Mapping[str, str], tier: Tier,
                             settings: Settings) -> NewExecution:
    """The execution with its checked model sources in its options (unchanged when its
    workflow names none)."""
    checked = await checked_model_sources(execution.workflow, pins, tier, settings)
    if not checked.inputs:
        return execution
    tokens = {affinity_token(parse_source(item.source, sha256=item.sha256,
                                          hf_endpoint=settings.hf_endpoint))
              for item in checked.inputs}
    return replace(execution, options=replace(execution.options, model_sources=checked),
                   required_models=tuple(sorted({*execution.required_models, *tokens})))


async def checked_model_sources(graph: Mapping[str, Mapping[str, object]],
                                pins: Mapping[str, str], tier: Tier, settings: Settings
                                ) -> ModelSourceOptions:
    """Each loader input's model source, parsed and checked; the ApiError of the first that
    is refused."""
    found = model_source_inputs(graph)
    _refuse_stray_pins(pins, found)
    if not found:
        return ModelSourceOptions()
    policy = settings.model_source_policy(tier.model_sources)
    checked = []
    for reference in found:
        source = _parsed(reference, pins.get(reference.source), settings.hf_endpoint)
        await _check_policy(reference, source, policy, tier)
        checked.append(ModelSourceInput(reference.node_id, reference.input, reference.source,
                                        source.sha256, reference.folder))
    return ModelSourceOptions(tier.model_sources, tuple(checked))


def _refuse_stray_pins(pins: Mapping[str, str], found: list[SourceInput]) -> None:
    """A pin for a source that no loader input names is a mistake (a typo would leave the
    intended source unpinned): refuse it rather than ignore it."""
    named = {reference.source for reference in found}
    for source in pins:
        if source not in named:
            raise RequestInvalid(
                "model_sources names a source that no loader input of the workflow gives",
                {"field": f"model_sources.{source}",
                 "suggestion": "Key model_sources by the exact value of a loader input "
                               "such as ckpt_name or lora_name"})


def _parsed(reference: SourceInput, pin: str | None, hf_endpoint: str) -> ModelSource:
    try:
        return parse_source(reference.source, sha256=pin, hf_endpoint=hf_endpoint)
    except MalformedSource as exc:
        raise workflow_invalid([ValidationProblem(
            reference.node_id,
            f"Input '{reference.input}' ({reference.path}) names a model source that "
            f"cannot be read: {exc}", _SOURCE_FORMS)]) from exc


async def _check_policy(reference: SourceInput, source: ModelSource, policy: SourcePolicy,
                        tier: Tier) -> None:
    try:
        await check_source(source, policy)
    except (SourceRefused, HashNotAllowed) as exc:
        raise _not_allowed(reference, source, tier, str(exc)) from exc


def _not_allowed(reference: SourceInput, source: ModelSource, tier: Tier, reason: str
                 ) -> ApiError:
    return ModelNotAllowed(
        f"The '{tier.name}' tier may not fetch the model of input {reference.path}: {reason}",
        {"field": f"workflow.{reference.path}", "node_id": reference.node_id,
         "input": reference.input, "model_source": source.display, "tier": tier.name,
         "suggestion": "Use a source on a host the operator lists in the tier's "
                       "model_sources, or a published model file"})
