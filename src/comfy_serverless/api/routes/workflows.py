"""The spec's workflow endpoints: execute, status, cancel, results (§1.1 to 1.3)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.executions import Accepted, Cancelled, ExecutionStatus
from comfy_serverless.api.bodies.results import NotReady, Results
from comfy_serverless.api.deps import CurrentKey, ServicesDep
from comfy_serverless.api.schemas import ExecuteRequest, error_responses
from comfy_serverless.api.sync_mode import answer_preferring_wait
from comfy_serverless.api.urls import public_base_url
from comfy_serverless.costs import cost_breakdown
from comfy_serverless.environments.requests import parse_environment
from comfy_serverless.errors import ApiError, ExecutionNotFound, PayloadTooLarge
from comfy_serverless.executions.bodies import (
    accepted_body,
    cancelled_body,
    output_body,
    replay_body,
    results_body,
    status_body,
)
from comfy_serverless.executions.expiry import raise_if_expired
from comfy_serverless.executions.requests import (
    Idempotency,
    NotifyRequest,
    OutputRequest,
    RunRequest,
    SubmitRequest,
)
from comfy_serverless.executions.submitter import (
    SubmitAccepted,
    SubmitOutcome,
    SubmitRefused,
    SubmitReplayed,
)
from comfy_serverless.executions.waiting import waiting_for
from comfy_serverless.services import Services
from comfy_serverless.store.records import ApiKeyRecord, ExecutionRecord, OutputRecord

__all__ = ["router"]

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

# X-Client-ID is recorded on the execution and shown in its status, up to this length.
MAX_CLIENT_ID_LENGTH = 256
# `GET …/results?wait=N` holds the request up to N seconds for the execution to end.
MAX_WAIT_SECONDS = 60.0
_WAIT_POLL_SECONDS = 0.25


class ExecutionAlreadyFinished(ApiError):
    status_code = 409
    error_code = "EXECUTION_ALREADY_FINISHED"


class ExecutionNotSuccessful(ApiError):
    status_code = 409
    error_code = "EXECUTION_NOT_SUCCESSFUL"


async def _owned(services: Services, execution_id: str, key: ApiKeyRecord) -> ExecutionRecord:
    execution = await services.store.executions.execution_for_key(execution_id, key.id)
    if execution is None:
        raise ExecutionNotFound(execution_id)
    return execution


@router.post("/execute", status_code=202, response_model=None, responses={
    **answer(202, Accepted), **answer(200, Results, "Prefer: wait=N, and it ended in time"),
    **error_responses(403, 409, 410, 422, 502)})
async def execute(
    body: ExecuteRequest,
    key: CurrentKey,
    services: ServicesDep,
    request: Request,
    x_webhook_url: Annotated[str | None, Header()] = None,
    x_client_id: Annotated[str | None, Header(max_length=MAX_CLIENT_ID_LENGTH)] = None,
    x_request_id: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    identity = Idempotency(x_request_id, idempotency_key,
                           [body.model_dump(mode="json"), x_webhook_url, x_client_id])
    outcome = await services.submitter.submit(
        _submit_request(body, identity, webhook_header=x_webhook_url, client_id=x_client_id),
        key)
    return await answer_preferring_wait(
        _submit_answer(outcome), prefer,  # Prefer: wait=N
        lambda execution_id, wait: results(request, execution_id, key, services, wait=wait))


def _submit_request(body: ExecuteRequest, identity: Idempotency, *, webhook_header: str | None,
                    client_id: str | None) -> SubmitRequest:
    """The body and headers of a submit in the domain's terms, for the Submitter."""
    output, run, notify = body.output_config, body.execution_config, body.notification_config
    return SubmitRequest(
        workflow=body.workflow, input_overrides=body.input_overrides,
        output=OutputRequest(output.format, output.quality, output.compression,
                             output.storage.model_dump(exclude_unset=True)),
        run=RunRequest(run.priority, run.timeout, run.gpu_memory_fraction, run.batch_size,
                       run.enable_optimization, run.retry_attempts),
        notify=NotifyRequest(notify.webhook_url, notify.webhook_secret,
                             notify.include_progress, notify.include_intermediate),
        webhook_header=webhook_header, client_id=client_id, idempotency=identity,
        model_sources={source: pin.sha256 for source, pin in body.model_sources.items()},
        environment=None if body.environment is None else parse_environment(body.environment))


def _submit_answer(outcome: SubmitOutcome) -> JSONResponse:
    """The 202 of an accepted or replayed submit; a refusal is raised as its error."""
    match outcome:
        case SubmitRefused(error=error):
            raise error
        case SubmitReplayed(execution=execution, estimate=estimate):
            return JSONResponse(replay_body(execution, estimate), status_code=202,
                                headers={"Idempotent-Replayed": "true"})
        case SubmitAccepted(execution=execution, estimate=estimate, warnings=warnings):
            body = accepted_body(execution, estimate)
            if warnings:
                body["warnings"] = warnings
            return JSONResponse(body, status_code=202)


@router.get("/{execution_id}/status", response_model=None,
            responses=answer(200, ExecutionStatus))
async def status(execution_id: str, key: CurrentKey, services: ServicesDep) -> dict[str, Any]:
    execution = await _owned(services, execution_id, key)
    log = await services.store.executions.events(execution.id)
    waiting = await waiting_for(execution, services.store,
                                time.time() - services.settings.live_window())
    return status_body(execution, log, await services.estimator.estimate(execution), waiting)


@router.delete("/{execution_id}/cancel", response_model=None,
               responses={**answer(200, Cancelled), **error_responses(409)})
async def cancel(execution_id: str, key: CurrentKey, services: ServicesDep) -> dict[str, Any]:
    execution = await _owned(services, execution_id, key)
    cancelled = await services.store.executions.cancel(execution.id, key.id, "user_requested",
                                                       time.time())
    if cancelled is None:
        current = await _owned(services, execution_id, key)
        raise ExecutionAlreadyFinished(
            f"Execution {execution_id} is already {current.status} and cannot be cancelled",
            {"execution_id": execution_id, "status": current.status},
        )
    services.wakeups.cancelled(cancelled.id)
    if execution.status == "queued":
        await services.inputs.discard(execution)
    return cancelled_body(cancelled)


@router.get("/{execution_id}/results", response_model=None, responses={
    **answer(200, Results), **answer(202, NotReady, "Not finished yet"),
    **error_responses(409, 410, 413, 502)})
async def results(
    request: Request,
    execution_id: str,
    key: CurrentKey,
    services: ServicesDep,
    include_metadata: bool = False,
    download_format: Annotated[Literal["urls", "base64"], Query()] = "urls",
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> JSONResponse:
    execution = await _owned(services, execution_id, key)
    if not execution.is_finished and wait > 0:
        execution = await _wait_until_finished(services, execution, wait)
    if execution.status in ("queued", "processing"):
        return JSONResponse(_not_ready(execution), status_code=202)
    if execution.status != "completed":
        raise _unsuccessful(execution)
    outputs = await services.store.executions.outputs(execution.id)
    raise_if_expired(execution, outputs)
    inline = download_format == "base64"
    if inline:
        _check_inline_size(outputs, services.settings.base64_max_bytes)
    base_url = public_base_url(request.scope)
    expires = int(time.time()) + services.settings.signed_url_ttl
    views = [
        (output.intermediate, await output_body(output, services.storage_router, base_url=base_url,
                                                expires=expires, inline=inline))
        for output in outputs
    ]
    body = results_body(
        execution,
        [view for intermediate, view in views if not intermediate],
        [view for intermediate, view in views if intermediate],
        include_metadata=include_metadata,
        cost_breakdown=cost_breakdown(execution, outputs, services.settings.prices()),
    )
    return JSONResponse(body)


async def _wait_until_finished(
    services: Services, execution: ExecutionRecord, wait: float
) -> ExecutionRecord:
    """Long-poll: an embedded worker signals the end at once; others are seen by polling."""
    deadline = time.monotonic() + wait
    with services.wakeups.watch_finish(execution.id) as finished:
        while not execution.is_finished and (remaining := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), min(remaining, _WAIT_POLL_SECONDS))
            execution = await services.store.executions.execution(execution.id) or execution
    return execution


def _not_ready(execution: ExecutionRecord) -> dict[str, Any]:
    return {
        "execution_id": execution.id,
        "status": execution.status,
        "progress": execution.progress,
        "message": "The execution has not finished; results are not available yet",
        "status_url": f"/v1/workflows/{execution.id}/status",
    }


def _unsuccessful(execution: ExecutionRecord) -> ApiError:
    error = execution.error or {}
    details = {"execution_id": execution.id, "status": execution.status,
               **(error.get("details") or {})}
    if execution.status == "cancelled":
        details["reason"] = execution.cancel_reason
    message = error.get("message") or f"Execution {execution.id} was {execution.status}"
    extra = {"retry_info": error["retry_info"]} if "retry_info" in error else None
    return ExecutionNotSuccessful(message, details, extra=extra)


def _check_inline_size(outputs: list[OutputRecord], limit: int) -> None:
    total = sum(output.size_bytes for output in outputs)
    if total > limit:
        raise PayloadTooLarge(
            f"The outputs total {total} bytes, more than the {limit} bytes "
            "that download_format=base64 may return",
            {"total_size_bytes": total, "max_base64_bytes": limit,
             "suggestion": "Use download_format=urls"},
        )
