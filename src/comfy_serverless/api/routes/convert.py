"""`POST /v1/workflows/convert`: a workflow in either format, answered in the API format
with the conversion's and the validator's warnings; nothing is queued or run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from comfy_serverless.api.bodies import answer
from comfy_serverless.api.bodies.results import Converted
from comfy_serverless.api.deps import CurrentKey, ServicesDep
from comfy_serverless.api.schemas import WorkflowBody, error_responses
from comfy_serverless.executions.fetched_models import host_check
from comfy_serverless.validation.prepare import prepare_workflow

__all__ = ["router"]

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


class ConvertRequest(WorkflowBody):
    """The same body checks as execute: strict, finite numbers, bounded nesting."""


@router.post("/convert", response_model=None, responses={
    **answer(200, Converted), **error_responses(422)})
async def convert(body: ConvertRequest, key: CurrentKey, services: ServicesDep
                  ) -> dict[str, Any]:
    # As the key's tier sees it: no other tenant's fetched model in an answer or a hint.
    catalog, _ = await services.catalogs.for_tier(host_check(services.access.limits(key)))
    rules = services.settings.validation_rules().with_verified_packs(
        services.catalogs.verified_node_packs)
    prepared = prepare_workflow(body.workflow, dict(body.input_overrides), rules, catalog)
    return {"status": "success", "format": "ui" if prepared.converted else "api",
            "workflow": prepared.graph, "warnings": prepared.warnings}
