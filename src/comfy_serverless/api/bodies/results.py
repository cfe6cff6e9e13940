"""Bodies of results and convert (spec §1.3), as executions/bodies.py and the routes build them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Converted",
    "CostBreakdown",
    "FileInfo",
    "NotReady",
    "Output",
    "OutputStorage",
    "Results",
    "ResultsBody",
    "ResultsMetadata",
    "RunMetrics",
]

_EXECUTION_ID = "exec_7f9e8d2c4a1b"


class FileInfo(BaseModel):
    filename: str
    size_bytes: int
    dimensions: str | None = Field(description="`WIDTHxHEIGHT` for images")
    format: str | None
    content_type: str


class OutputStorage(BaseModel):
    provider: str = Field(description="`local` or `s3`")
    bucket: str | None
    key: str
    url: str = Field(description="Signed unless the output is public")
    expires_at: str | None = Field(description="When the signed URL expires; null if public")
    public_access: bool
    retention_expires_at: str | None = Field(description="When the file is deleted")


class Output(BaseModel):
    node_id: str
    output_type: str
    file_info: FileInfo
    storage: OutputStorage
    data: str | None = Field(default=None, description="With download_format=base64 only")
    encoding: Literal["base64"] | None = Field(default=None,
                                               description="With download_format=base64 only")


class ResultsMetadata(BaseModel):
    total_outputs: int
    total_size_bytes: int
    generation_seed: int | None
    model_used: str | None
    workflow_metadata: dict[str, Any]
    attempts: int


class ResultsBody(BaseModel):
    outputs: list[Output]
    intermediate_outputs: list[Output]
    metadata: ResultsMetadata | None = Field(default=None,
                                             description="With include_metadata=true only")


class CostBreakdown(BaseModel):
    gpu_compute: float
    storage: float
    bandwidth: float
    total: float
    currency: str
    gpu_type: str | None
    gpu_seconds: float
    stored_bytes: int
    delivered_bytes: int


class RunMetrics(BaseModel):
    total_time: float | None
    queue_time: float | None
    processing_time: float | None
    gpu_time: float | None
    cost_breakdown: CostBreakdown | None


class Results(BaseModel):
    """200 from `GET /v1/workflows/{execution_id}/results`, and from a submit with
    `Prefer: wait=N` whose execution ended in time."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "execution_id": _EXECUTION_ID, "status": "completed",
        "completed_at": "2024-08-31T10:16:45Z", "execution_time": 75,
        "results": {
            "outputs": [{
                "node_id": "9", "output_type": "IMAGE",
                "file_info": {"filename": "output_001.png", "size_bytes": 2048576,
                              "dimensions": "1024x1024", "format": "PNG",
                              "content_type": "image/png"},
                "storage": {"provider": "s3", "bucket": "comfyui-results",
                            "key": f"outputs/{_EXECUTION_ID}/output_001.png",
                            "url": "https://signed-url.s3.amazonaws.com/...",
                            "expires_at": "2024-08-31T18:16:45Z", "public_access": False,
                            "retention_expires_at": "2024-09-30T10:16:45Z"},
            }],
            "intermediate_outputs": [],
            "metadata": {"total_outputs": 1, "total_size_bytes": 2048576,
                         "generation_seed": 12345, "model_used": "sdxl_base_1.0.safetensors",
                         "workflow_metadata": {}, "attempts": 1},
        },
        "execution_metrics": {
            "total_time": 75, "queue_time": 60, "processing_time": 75, "gpu_time": 68,
            "cost_breakdown": {"gpu_compute": 0.0125, "storage": 0.0001, "bandwidth": 0.0002,
                               "total": 0.0128, "currency": "USD", "gpu_type": "A10G",
                               "gpu_seconds": 68.0, "stored_bytes": 2048576,
                               "delivered_bytes": 2048576},
        },
    }]})

    execution_id: str
    status: Literal["completed"]
    completed_at: str | None
    execution_time: float | None
    results: ResultsBody
    execution_metrics: RunMetrics


class NotReady(BaseModel):
    """202 from `GET …/results` while the execution is still queued or processing."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "execution_id": _EXECUTION_ID, "status": "processing", "progress": 0.4,
        "message": "The execution has not finished; results are not available yet",
        "status_url": f"/v1/workflows/{_EXECUTION_ID}/status",
    }]})

    execution_id: str
    status: Literal["queued", "processing"]
    progress: float
    message: str
    status_url: str


class Converted(BaseModel):
    """200 from `POST /v1/workflows/convert`: the workflow in the API format."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "success", "format": "ui",
        "workflow": {"1": {"class_type": "CLIPTextEncode",
                           "inputs": {"text": "beautiful landscape", "clip": ["4", 1]}}},
        "warnings": [],
    }]})

    status: Literal["success"]
    format: Literal["ui", "api"] = Field(description="The format the workflow came in")
    workflow: dict[str, Any] = Field(description="The workflow in the API format")
    warnings: list[str]
