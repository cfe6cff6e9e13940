"""From a validated request to a queued execution."""

from __future__ import annotations

import secrets
import time
from typing import Any

from comfy_serverless.api.schemas import ExecuteRequest
from comfy_serverless.errors import ApiError
from comfy_serverless.settings import Settings
from comfy_serverless.store.records import ApiKeyRecord, NewExecution
from comfy_serverless.validation.overrides import apply_overrides
from comfy_serverless.validation.workflow import parse_workflow, workflow_signature

__all__ = ["FeatureUnavailable", "new_execution", "new_execution_id"]


class FeatureUnavailable(ApiError):
    status_code = 422
    error_code = "FEATURE_UNAVAILABLE"


def new_execution_id() -> str:
    return f"exec_{secrets.token_hex(12)}"


def _check_supported(request: ExecuteRequest) -> None:
    storage = request.output_config.storage
    if storage.provider != "local":
        raise FeatureUnavailable(
            f"Storage provider '{storage.provider}' is not configured on this deployment",
            {"field": "output_config.storage.provider", "supported": ["local"]},
        )
    if request.output_config.format != "png":
        raise FeatureUnavailable(
            f"Output format '{request.output_config.format}' is not available yet",
            {"field": "output_config.format", "supported": ["png"]},
        )


def _options(request: ExecuteRequest, metadata: dict[str, Any]) -> dict[str, Any]:
    notification = request.notification_config.model_dump(exclude={"webhook_secret"})
    return {
        "metadata": metadata,
        "output_config": request.output_config.model_dump(),
        "execution_config": request.execution_config.model_dump(),
        "notification_config": notification,
    }


def new_execution(
    request: ExecuteRequest,
    key: ApiKeyRecord,
    settings: Settings,
    *,
    webhook_header: str | None,
    client_id: str | None,
) -> NewExecution:
    _check_supported(request)
    parsed = parse_workflow(request.workflow)
    overrides = dict(request.input_overrides)
    if request.execution_config.batch_size is not None:
        overrides.setdefault("batch_size", request.execution_config.batch_size)
    graph = apply_overrides(parsed.graph, overrides)
    config = request.execution_config
    retries = config.retry_attempts
    if retries is None:
        retries = settings.default_retry_attempts
    return NewExecution(
        id=new_execution_id(),
        api_key_id=key.id,
        priority=config.priority,
        workflow=graph,
        options=_options(request, parsed.metadata),
        signature=workflow_signature(graph),
        webhook_url=request.notification_config.webhook_url or webhook_header,
        client_id=client_id,
        submitted_at=time.time(),
        max_attempts=1 + retries,
        total_nodes=len(graph),
    )
