"""Request bodies at the HTTP edge (pydantic), and the error body every route declares.

Every request model is strict: unknown fields are refused, so typos surface, and the spec's
integers, booleans and numbers are exactly that (`"5"` or `true` is no priority; an integer
is a number). Every request body is refused if it holds a non-finite number anywhere (NaN,
Infinity, or a literal too large for a float, such as 1e999), with the path of each.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from comfy_serverless.environments.requests import ENVIRONMENT_PATTERN, parse_environment
from comfy_serverless.validation.values import nesting_exceeds

__all__ = [
    "ErrorBody",
    "ExecuteRequest",
    "ExecutionConfig",
    "NotificationConfig",
    "OutputConfig",
    "RequestBody",
    "StorageConfig",
    "StrictModel",
    "WorkflowBody",
    "error_responses",
    "non_finite_paths",
]


class ErrorBody(BaseModel):
    """The spec's error shape (§3.2): what every answer of 400 and above carries."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "error", "error_code": "WORKFLOW_VALIDATION_FAILED",
         "message": "Workflow validation failed: Invalid node connections",
         "details": {"validation_errors": [
             {"node_id": "2", "error": "Missing required input connection 'model'",
              "suggestion": "Connect a checkpoint loader node to input 'model'"}]},
         "documentation_url": "https://api.example.com/errors/WORKFLOW_VALIDATION_FAILED"},
        {"status": "error", "error_code": "RATE_LIMIT_EXCEEDED",
         "message": "Rate limit exceeded. Maximum 10 concurrent executions per API key.",
         "details": {"current_executions": 10, "max_concurrent": 10, "retry_after": 120}},
        {"status": "error", "error_code": "WORKFLOW_EXECUTION_FAILED",
         "message": "Workflow execution failed during KSampler node",
         "details": {"execution_id": "exec_7f9e8d2c4a1b", "failed_node": "2",
                     "node_type": "KSampler", "error_type": "OUT_OF_MEMORY"},
         "retry_info": {"retryable": True, "retry_delay": 60, "max_retries": 2,
                        "remaining_retries": 1}},
    ]})

    status: Literal["error"]
    error_code: str
    message: str
    details: dict[str, Any]
    documentation_url: str | None = None
    retry_info: dict[str, Any] | None = None


# How deeply `workflow` and `input_overrides` may nest as a whole, checked without recursion
# before anything serialises them (pydantic and json give up, with an error, near 255 and
# 1,000 levels). Input values have their own, lower limit: max_input_depth.
MAX_BODY_DEPTH = 100


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, each with the spec's error body."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
            for status in statuses}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RequestBody(StrictModel):
    """A whole request body: no non-finite number anywhere in it."""

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        paths = non_finite_paths(data)
        if paths:
            raise PydanticCustomError(
                "finite_number", "Numbers must be finite; not so at {field}",
                {"field": ", ".join(paths)})
        return data


def non_finite_paths(value: Any) -> list[str]:
    """The dotted path of every NaN or infinite number in a parsed JSON value (iterative)."""
    found: list[str] = []
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            found.append(path)
        elif isinstance(item, dict):
            pending.extend((f"{path}.{key}" if path else str(key), child)
                           for key, child in item.items())
        elif isinstance(item, list):
            pending.extend((f"{path}.{index}" if path else str(index), child)
                           for index, child in enumerate(item))
    return sorted(found)



class StorageConfig(StrictModel):
    provider: Literal["local", "s3"] = "local"
    bucket: str | None = None
    path: str | None = None
    public_access: bool = False
    retention_days: int | None = Field(default=None, ge=1, le=3650)


class OutputConfig(StrictModel):
    format: Literal["png", "jpeg", "jpg", "webp"] = "png"
    quality: int = Field(default=95, ge=1, le=100)
    compression: Literal["lossless", "lossy"] | None = None
    storage: StorageConfig = Field(default_factory=StorageConfig)


class ExecutionConfig(StrictModel):
    priority: int = Field(default=5, ge=1, le=10)
    timeout: int | None = Field(default=None, ge=1, le=86_400)
    gpu_memory_fraction: float | None = Field(default=None, gt=0, le=1)
    batch_size: int | None = Field(default=None, ge=1, le=64)
    enable_optimization: bool = True
    retry_attempts: int | None = Field(default=None, ge=0, le=10)


class NotificationConfig(StrictModel):
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_secret: str | None = Field(default=None, max_length=512)
    include_progress: bool = False
    include_intermediate: bool = False


class WorkflowBody(RequestBody):
    """A workflow (API or UI format) and its overrides, as execute and convert take them."""

    workflow: dict[str, Any]
    input_overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("workflow", "input_overrides")
    @classmethod
    def _not_too_deep(cls, value: dict[str, Any]) -> dict[str, Any]:
        if nesting_exceeds(value, MAX_BODY_DEPTH):
            raise ValueError(f"nests lists and objects more than {MAX_BODY_DEPTH} levels deep")
        return value


class ModelSourcePin(StrictModel):
    """What a request says of one model source: the sha256 its content must have."""

    sha256: str = Field(pattern="^[0-9a-fA-F]{64}$",
                        description="The sha256 of the model file, 64 hexadecimal digits")


class ExecuteRequest(WorkflowBody):
    output_config: OutputConfig = Field(default_factory=OutputConfig)
    execution_config: ExecutionConfig = Field(default_factory=ExecutionConfig)
    notification_config: NotificationConfig = Field(default_factory=NotificationConfig)
    model_sources: dict[str, ModelSourcePin] = Field(
        default_factory=dict, max_length=100,
        description="Pins of the model sources (https://, s3://, hf:// values of loader "
                    "inputs such as ckpt_name), keyed by the source exactly as the workflow "
                    "gives it")
    environment: str | None = Field(
        default=None, max_length=200, json_schema_extra={"pattern": ENVIRONMENT_PATTERN},
        description="Run only on a worker whose installed environment has this name "
                    "(`comfy-serverless engine install --manifest`), or this name at a hash "
                    "that starts with the hexadecimal digits after `@` (`sdxl-tools@3f2a9c`). "
                    "Left out: any worker. One that no worker has ever published is refused "
                    "(400 INVALID_REQUEST); while no live worker has it, the execution stays "
                    "queued and its status's `waiting_for` says so")

    @field_validator("environment")
    @classmethod
    def _environment_shape(cls, value: str | None) -> str | None:
        if value is not None:
            parse_environment(value)  # MalformedEnvironment (a ValueError) says the shape
        return value
