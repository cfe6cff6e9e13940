"""Request bodies at the HTTP edge (pydantic). Unknown fields are refused, so typos surface."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from comfy_serverless.validation.values import nesting_exceeds

__all__ = [
    "ExecuteRequest",
    "ExecutionConfig",
    "NotificationConfig",
    "OutputConfig",
    "StorageConfig",
]


# How deeply `workflow` and `input_overrides` may nest as a whole, checked without recursion
# before anything serialises them (pydantic and json give up, with an error, near 255 and
# 1,000 levels). Input values have their own, lower limit: max_input_depth.
MAX_BODY_DEPTH = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageConfig(_Strict):
    provider: Literal["local", "s3"] = "local"
    bucket: str | None = None
    path: str | None = None
    public_access: bool = False
    retention_days: int | None = Field(default=None, ge=1, le=3650)


class OutputConfig(_Strict):
    format: Literal["png", "jpeg", "jpg", "webp"] = "png"
    quality: int = Field(default=95, ge=1, le=100)
    compression: Literal["lossless", "lossy"] | None = None
    storage: StorageConfig = Field(default_factory=StorageConfig)


class ExecutionConfig(_Strict):
    priority: int = Field(default=5, ge=1, le=10)
    timeout: int | None = Field(default=None, ge=1, le=86_400)
    gpu_memory_fraction: float | None = Field(default=None, gt=0, le=1)
    batch_size: int | None = Field(default=None, ge=1, le=64)
    enable_optimization: bool = True
    retry_attempts: int | None = Field(default=None, ge=0, le=10)


class NotificationConfig(_Strict):
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_secret: str | None = Field(default=None, max_length=512)
    include_progress: bool = False
    include_intermediate: bool = False


class ExecuteRequest(_Strict):
    workflow: dict[str, Any]
    input_overrides: dict[str, Any] = Field(default_factory=dict)
    output_config: OutputConfig = Field(default_factory=OutputConfig)
    execution_config: ExecutionConfig = Field(default_factory=ExecutionConfig)
    notification_config: NotificationConfig = Field(default_factory=NotificationConfig)

    @field_validator("workflow", "input_overrides")
    @classmethod
    def _not_too_deep(cls, value: dict[str, Any]) -> dict[str, Any]:
        if nesting_exceeds(value, MAX_BODY_DEPTH):
            raise ValueError(f"nests lists and objects more than {MAX_BODY_DEPTH} levels deep")
        return value
