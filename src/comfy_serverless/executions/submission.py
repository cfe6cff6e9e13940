"""From a validated request to a queued execution."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from comfy_serverless.access.admission import check_models, check_timeout
from comfy_serverless.access.tiers import AccessPolicy, Tier
from comfy_serverless.api.schemas import ExecuteRequest
from comfy_serverless.errors import ApiError, RequestInvalid
from comfy_serverless.models.references import required_models
from comfy_serverless.settings import Settings
from comfy_serverless.storage.destinations import (
    Destination,
    DestinationInvalid,
    DestinationUnavailable,
    resolve_destination,
)
from comfy_serverless.store.records import ApiKeyRecord, NewExecution
from comfy_serverless.validation.catalog import NodeCatalog
from comfy_serverless.validation.prepare import prepare_workflow
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.validation.workflow import workflow_signature
from comfy_serverless.webhooks.ssrf import UnsafeDestination, check_destination

__all__ = [
    "FeatureUnavailable",
    "InvalidWebhookUrl",
    "Submission",
    "check_webhook_url",
    "webhook_field",
    "new_execution",
    "new_execution_id",
]


class FeatureUnavailable(ApiError):
    status_code = 422
    error_code = "FEATURE_UNAVAILABLE"


def new_execution_id() -> str:
    return f"exec_{secrets.token_hex(12)}"


def _destination(request: ExecuteRequest, execution_id: str, settings: Settings
                 ) -> Destination:
    """Where the execution's files go, resolved now, so that a bad request fails at submit."""
    requested = request.output_config.storage.model_dump(exclude_unset=True)
    try:
        return resolve_destination(requested, execution_id, settings.storage_defaults())
    except DestinationUnavailable as exc:
        raise FeatureUnavailable(str(exc), {"field": exc.field, "supported": list(exc.supported)}
                                 ) from exc
    except DestinationInvalid as exc:
        raise RequestInvalid(str(exc), {"field": exc.field}) from exc


def _options(request: ExecuteRequest, metadata: dict[str, Any], timeout: int,
             destination: Destination) -> dict[str, Any]:
    notification = request.notification_config.model_dump(exclude={"webhook_secret"})
    return {
        "metadata": metadata,
        "output_config": {**request.output_config.model_dump(),
                          "storage": destination.as_options()},
        "execution_config": {**request.execution_config.model_dump(), "timeout": timeout},
        "notification_config": notification,
    }


@dataclass(frozen=True)
class Submission:
    execution: NewExecution
    warnings: list[str]


def _timeout(request: ExecuteRequest, rules: ValidationRules, tier: Tier) -> int:
    """The execution's timeout: asked for, or else the lower of the tier's timeout_limit and
    max_execution_time; asking for more than either is refused."""
    asked = request.execution_config.timeout
    if asked is not None and asked > rules.max_execution_time:
        raise RequestInvalid(
            f"execution_config.timeout {asked}s is above max_execution_time "
            f"{rules.max_execution_time}s",
            {"field": "execution_config.timeout", "max_execution_time": rules.max_execution_time},
        )
    check_timeout(asked, tier)
    return asked or min(rules.max_execution_time, tier.timeout_limit)


class InvalidWebhookUrl(ApiError):
    status_code = 400
    error_code = "INVALID_WEBHOOK_URL"


def webhook_field(request: ExecuteRequest) -> str:
    """Where an execution's webhook URL came from: the body's field wins over the header."""
    if request.notification_config.webhook_url:
        return "notification_config.webhook_url"
    return "X-Webhook-URL"


async def check_webhook_url(url: str | None, settings: Settings, *, field: str) -> None:
    """Refuse, before any connection, a webhook URL that is malformed, not https, or that
    resolves to an address that is not public (unless allowlisted); the 400 names `field`."""
    if url is None:
        return
    try:
        await check_destination(url, settings.webhook_policy())
    except UnsafeDestination as exc:
        raise InvalidWebhookUrl(f"Webhook URL refused ({field}): {exc}",
                                {"field": field, "webhook_url": url[:2048]}) from exc


def _gpu_types(tier: Tier) -> tuple[str, ...] | None:
    allowed = tier.allowed_gpu_types
    return None if allowed is None else tuple(allowed)


def new_execution(
    request: ExecuteRequest,
    key: ApiKeyRecord,
    settings: Settings,
    catalog: NodeCatalog | None,
    *,
    tier: Tier,
    policy: AccessPolicy,
    webhook_header: str | None,
    client_id: str | None,
) -> Submission:
    execution_id = new_execution_id()
    destination = _destination(request, execution_id, settings)
    rules = settings.validation_rules()
    timeout = _timeout(request, rules, tier)
    overrides = dict(request.input_overrides)
    if request.execution_config.batch_size is not None:
        overrides.setdefault("batch_size", request.execution_config.batch_size)
    prepared = prepare_workflow(request.workflow, overrides, rules, catalog)
    graph = prepared.graph
    check_models(graph, tier, policy)
    config = request.execution_config
    retries = config.retry_attempts
    if retries is None:
        retries = settings.default_retry_attempts
    execution = NewExecution(
        id=execution_id,
        api_key_id=key.id,
        priority=config.priority,
        workflow=graph,
        options=_options(request, prepared.metadata, timeout, destination),
        signature=workflow_signature(graph),
        webhook_url=request.notification_config.webhook_url or webhook_header,
        client_id=client_id,
        submitted_at=time.time(),
        max_attempts=1 + retries,
        total_nodes=len(graph),
        webhook_secret=request.notification_config.webhook_secret,
        webhook_max_retries=settings.webhook_max_retries,
        required_models=required_models(graph),
        allowed_gpu_types=_gpu_types(tier),
    )
    return Submission(execution, prepared.warnings)
