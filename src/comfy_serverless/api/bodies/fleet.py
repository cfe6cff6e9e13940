"""Bodies of the fleet's routes: queue status (spec §1.5), models and preloads (spec §1.4)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ModelAvailability",
    "ModelEntry",
    "ModelFileInfo",
    "ModelList",
    "ModelPerformance",
    "Pagination",
    "PreloadScheduled",
    "QueueStatus",
    "ScheduledPreload",
]


class QueueTotals(BaseModel):
    total_queued: int
    total_processing: int
    avg_wait_time: float | None = Field(description="Seconds, over the last window_seconds")
    avg_processing_time: float | None
    window_seconds: float


class SystemCapacity(BaseModel):
    total_gpu_nodes: int = Field(description="Live workers")
    available_gpu_nodes: int = Field(description="Idle live workers")
    total_gpu_memory: str = Field(description="Such as `24.0GB`")
    available_gpu_memory: str
    utilization: float


class PriorityQueue(BaseModel):
    priority: int
    count: int
    avg_wait_time: float


class QueueStatus(BaseModel):
    """200 from `GET /v1/queue/status`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "queue_status": {"total_queued": 15, "total_processing": 8, "avg_wait_time": 45,
                         "avg_processing_time": 67, "window_seconds": 3600},
        "system_capacity": {"total_gpu_nodes": 12, "available_gpu_nodes": 4,
                            "total_gpu_memory": "288GB", "available_gpu_memory": "96GB",
                            "utilization": 0.67},
        "queue_breakdown": [{"priority": 10, "count": 2, "avg_wait_time": 15},
                            {"priority": 5, "count": 8, "avg_wait_time": 60},
                            {"priority": 1, "count": 5, "avg_wait_time": 180}],
    }]})

    queue_status: QueueTotals
    system_capacity: SystemCapacity
    queue_breakdown: list[PriorityQueue]


class ModelFileInfo(BaseModel):
    filename: str
    size_bytes: int
    hash: str | None = Field(description="`sha256:…` once a worker hashed it")
    folder: str
    source: str | None = Field(
        default=None, description="For a file a worker fetched by source: where from, in "
                                  "display form (no query string or credential)")


class ModelPerformance(BaseModel):
    memory_requirement: str
    avg_inference_time: float | None
    cache_priority: int


class ModelAvailability(BaseModel):
    regions: list[str]
    warm_cache: bool
    load_time: float | None
    workers: int


class ModelEntry(BaseModel):
    model_id: str
    name: str
    category: str
    file_info: ModelFileInfo
    capabilities: dict[str, Any]
    performance: ModelPerformance
    availability: ModelAvailability


class Pagination(BaseModel):
    total: int
    limit: int
    offset: int
    has_more: bool


_MODEL: dict[str, Any] = {
    "model_id": "checkpoint/sdxl_base_1.0", "name": "sdxl_base_1.0", "category": "checkpoint",
    "file_info": {"filename": "sdxl_base_1.0.safetensors", "size_bytes": 6938078208,
                  "hash": "sha256:31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893d7e5b",
                  "folder": "checkpoints", "source": None},
    "capabilities": {"resolution": "1024x1024", "styles": ["realistic", "artistic"],
                     "languages": ["en"]},
    "performance": {"memory_requirement": "6.5GB", "avg_inference_time": 12.5,
                    "cache_priority": 9},
    "availability": {"regions": ["us-east-1", "eu-west-1"], "warm_cache": True,
                     "load_time": 8.2, "workers": 2},
}


class ModelList(BaseModel):
    """200 from `GET /v1/models/list`: the models the live workers have."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "models": [_MODEL],
        "pagination": {"total": 45, "limit": 50, "offset": 0, "has_more": False},
    }]})

    models: list[ModelEntry]
    pagination: Pagination


class ScheduledPreload(BaseModel):
    preload_id: str
    model_id: str
    priority: int
    regions: list[str] | None
    expires_at: str | None
    workers: list[str] = Field(description="The live workers asked to load it (for a "
                                           "source: to fetch it)")
    warm_cache: bool
    source: str | None = Field(default=None, description="A preload by source: the source "
                               "in display form (no query string or credential)")
    sha256: str | None = Field(default=None, description="The source's pinned sha256")
    folder: str = Field(description="The model folder the file is (or is placed) in")
    model_id_provisional: bool = Field(
        default=False, description="True for a source without a sha256: its content, and so "
        "the `<12 hex>-` prefix of the placed file's name, is known only once fetched; "
        "`model_id` is then `<category>/<file name>`, and the model list shows the placed "
        "file as `<category>/<12 hex>-<file name>` with `file_info.source` equal to this "
        "`source` and `file_info.folder` to this `folder`")


class PreloadScheduled(BaseModel):
    """202 from `POST /v1/models/preload`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "scheduled", "cache_duration": 3600,
        "preloads": [{"preload_id": "pre_0a1b2c3d4e5f6a7b",
                      "model_id": "checkpoint/sdxl_base_1.0", "priority": 9,
                      "regions": ["us-east-1"], "expires_at": "2024-08-31T11:15:30Z",
                      "workers": ["gpu-node-7"], "warm_cache": False, "source": None,
                      "sha256": None, "folder": "checkpoints",
                      "model_id_provisional": False},
                     {"preload_id": "pre_1b2c3d4e5f6a7b8c",
                      "model_id": "checkpoint/6ce0161689b3-v1-5-pruned-emaonly",
                      "priority": 5, "regions": None, "expires_at": "2024-08-31T11:15:30Z",
                      "workers": ["gpu-node-7", "gpu-node-8"], "warm_cache": False,
                      "source": "https://models.example.com/sd15/v1-5-pruned-emaonly"
                                ".safetensors",
                      "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
                      "folder": "checkpoints", "model_id_provisional": False}],
    }]})

    status: Literal["scheduled"]
    cache_duration: int
    preloads: list[ScheduledPreload]
