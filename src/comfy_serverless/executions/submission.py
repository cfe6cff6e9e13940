"""From a submit request to the execution it queues: validated, its timeout, retries,
destination and required models decided, ready to stage and admit (see submitter.py)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from comfy_serverless.access.admission import check_models, check_timeout
from comfy_serverless.access.tiers import AccessPolicy, Tier
from comfy_serverless.errors import ApiError, RequestInvalid
from comfy_serverless.executions.requests import SubmitRequest
from comfy_serverless.settings import Settings
from comfy_serverless.storage.destinations import (
    Destination,
    DestinationInvalid,
    DestinationUnavailable,
    resolve_destination,
)
from comfy_serverless.store.options import ExecutionOptions, OutputOptions
from comfy_serverless.store.records import ApiKeyRecord, NewExecution
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.model_references import required_models
from comfy_serverless.validation.prepare import PreparedWorkflow, prepare_workflow
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.workflow import workflow_signature

__all__ = [
    "FeatureUnavailable",
    "Submission",
    "new_execution",
    "new_execution_id",
]


class FeatureUnavailable(ApiError):
    status_code = 422
    error_code = "FEATURE_UNAVAILABLE"


def new_execution_id() -> str:
    return f"exec_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class Submission:
    execution: NewExecution
    warnings: list[str]


def _destination(request: SubmitRequest, execution_id: str, settings: Settings
                 ) -> Destination:
    """Where the execution's files go, resolved now, so that a bad request fails at submit."""
    try:
        return resolve_destination(dict(request.output.storage), execution_id,
                                   settings.storage_defaults())
    except DestinationUnavailable as exc:
        raise FeatureUnavailable(str(exc), {"field": exc.field, "supported": list(exc.supported)}
                                 ) from exc
    except DestinationInvalid as exc:
        raise RequestInvalid(str(exc), {"field": exc.field}) from exc


def _options(request: SubmitRequest, metadata: dict[str, Any], timeout: int,
             destination: Destination) -> ExecutionOptions:
    output = request.output
    return ExecutionOptions(
        metadata=metadata,
        output=OutputOptions(output.format, output.quality, output.compression,
                             destination.as_stored()),
        run=request.run.as_options(timeout),
        notify=request.notify.as_options(),
    )


def _timeout(request: SubmitRequest, rules: ValidationRules, tier: Tier) -> int:
    """The execution's timeout: asked for, or else the lower of the tier's timeout_limit and
    max_execution_time; asking for more than either is refused."""
    asked = request.run.timeout
    if asked is not None and asked > rules.max_execution_time:
        raise RequestInvalid(
            f"execution_config.timeout {asked}s is above max_execution_time "
            f"{rules.max_execution_time}s",
            {"field": "execution_config.timeout", "max_execution_time": rules.max_execution_time},
        )
    check_timeout(asked, tier)
    return asked or min(rules.max_execution_time, tier.timeout_limit)


def _gpu_types(tier: Tier) -> tuple[str, ...] | None:
    allowed = tier.allowed_gpu_types
    return None if allowed is None else tuple(allowed)


def _prepared(request: SubmitRequest, rules: ValidationRules, catalog: NodeCatalog | None
              ) -> PreparedWorkflow:
    """The workflow validated with its overrides; `batch_size` is one unless named there."""
    overrides = dict(request.input_overrides)
    if request.run.batch_size is not None:
        overrides.setdefault("batch_size", request.run.batch_size)
    return prepare_workflow(request.workflow, overrides, rules, catalog)


def new_execution(request: SubmitRequest, key: ApiKeyRecord, settings: Settings,
                  catalog: NodeCatalog | None, *, tier: Tier, policy: AccessPolicy,
                  verified_packs: frozenset[str] = frozenset()) -> Submission:
    """The execution `request` asks for, or the ApiError of the first thing wrong with it.
    `verified_packs`: node packs that workers publish as verified (executions/catalogs.py)."""
    execution_id = new_execution_id()
    destination = _destination(request, execution_id, settings)
    rules = settings.validation_rules().with_verified_packs(verified_packs)
    timeout = _timeout(request, rules, tier)
    prepared = _prepared(request, rules, catalog)
    graph = prepared.graph
    check_models(graph, tier, policy)
    retries = request.run.retry_attempts
    execution = NewExecution(
        id=execution_id, api_key_id=key.id, priority=request.run.priority, workflow=graph,
        options=_options(request, prepared.metadata, timeout, destination),
        signature=workflow_signature(graph), webhook_url=request.webhook_url,
        client_id=request.client_id, submitted_at=time.time(),
        max_attempts=1 + (settings.default_retry_attempts if retries is None else retries),
        total_nodes=len(graph), webhook_secret=request.notify.webhook_secret,
        webhook_max_retries=settings.webhook_max_retries,
        required_models=required_models(graph), allowed_gpu_types=_gpu_types(tier),
        environment=request.environment.name if request.environment else None,
        environment_hash=request.environment.hash_prefix if request.environment else None,
    )
    return Submission(execution, prepared.warnings)
