"""Domain values read from and written to the store: frozen dataclasses, no driver types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from comfy_serverless.outbound_urls import destination_of
from comfy_serverless.store.connector import Row
from comfy_serverless.store.options import ExecutionOptions

__all__ = [
    "ApiKeyRecord",
    "ClaimMatch",
    "ExecutionRecord",
    "ExecutionStatus",
    "Lease",
    "LogEntry",
    "NewExecution",
    "OutputRecord",
    "ProgressSnapshot",
    "WebhookDelivery",
    "WebhookEvent",
    "WorkerState",
]

ExecutionStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]
FINISHED_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


def _json_or_none(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    prefix: str
    secret_hash: str
    kind: str
    tier: str
    is_admin: bool
    name: str | None
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None
    custom_limits: dict[str, int | None] | None = None
    rotated_at: float | None = None

    @classmethod
    def from_row(cls, row: Row) -> ApiKeyRecord:
        return cls(**{**row, "is_admin": bool(row["is_admin"]),
                      "custom_limits": _json_or_none(row.get("custom_limits"))})

    @property
    def is_public(self) -> bool:
        return self.kind == "public"


@dataclass(frozen=True)
class NewExecution:
    id: str
    api_key_id: str
    priority: int
    workflow: dict[str, Any]
    options: ExecutionOptions
    signature: str
    webhook_url: str | None
    client_id: str | None
    submitted_at: float
    max_attempts: int
    total_nodes: int
    webhook_secret: str | None = None
    webhook_max_retries: int = 3
    # GPU types that may run it (None: any; "all" also matches every type).
    allowed_gpu_types: tuple[str, ...] | None = None
    # The model files its loader nodes name (model affinity at claim time).
    required_models: tuple[str, ...] = ()
    # The environment it asked for (None: any worker), and the start of its hash, if pinned.
    environment: str | None = None
    environment_hash: str | None = None

    def params(self) -> dict[str, Any]:
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        values["workflow"] = json.dumps(self.workflow)
        values["options"] = json.dumps(self.options.as_json())
        values["allowed_gpu_types"] = (None if self.allowed_gpu_types is None
                                       else json.dumps(list(self.allowed_gpu_types)))
        values["required_models"] = json.dumps(list(self.required_models))
        values["webhook_destination"] = (None if self.webhook_url is None
                                         else destination_of(self.webhook_url))
        return values

    def as_queued(self) -> ExecutionRecord:
        """The record the store holds right after the insert, without reading it back."""
        return ExecutionRecord(
            id=self.id, api_key_id=self.api_key_id, status="queued", priority=self.priority,
            workflow=self.workflow, options=self.options, signature=self.signature,
            webhook_url=self.webhook_url, client_id=self.client_id,
            submitted_at=self.submitted_at, started_at=None, finished_at=None,
            not_before=None, attempt=0, max_attempts=self.max_attempts, worker_id=None,
            lease_owner=None, lease_expires_at=None, engine_prompt_id=None, progress=0.0,
            current_node=None, current_node_id=None, current_step=None, total_steps=None,
            total_nodes=self.total_nodes, completed_nodes=0, gpu_time=None,
            resource_allocation=None, error=None, cancel_reason=None,
            allowed_gpu_types=(None if self.allowed_gpu_types is None
                               else list(self.allowed_gpu_types)),
            required_models=list(self.required_models), environment=self.environment,
            environment_hash=self.environment_hash,
        )


@dataclass(frozen=True)
class ExecutionRecord:
    id: str
    api_key_id: str
    status: ExecutionStatus
    priority: int
    workflow: dict[str, Any]
    options: ExecutionOptions
    signature: str
    webhook_url: str | None
    client_id: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    not_before: float | None
    attempt: int
    max_attempts: int
    worker_id: str | None
    lease_owner: str | None
    lease_expires_at: float | None
    engine_prompt_id: str | None
    progress: float
    current_node: str | None
    current_node_id: str | None
    current_step: int | None
    total_steps: int | None
    total_nodes: int
    completed_nodes: int
    gpu_time: float | None
    resource_allocation: dict[str, Any] | None
    error: dict[str, Any] | None
    cancel_reason: str | None
    requested_priority: int | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_max_retries: int | None = None
    allowed_gpu_types: list[str] | None = None
    required_models: list[str] | None = None
    engine_metrics: dict[str, Any] | None = None
    webhook_destination: str | None = None
    environment: str | None = None
    environment_hash: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> ExecutionRecord:
        decoded = dict(row)
        for column in ("workflow", "options", "resource_allocation", "error",
                       "allowed_gpu_types", "required_models", "engine_metrics"):
            decoded[column] = _json_or_none(decoded[column])
        decoded["options"] = ExecutionOptions.from_json(decoded["options"])
        return cls(**decoded)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def lease(self) -> Lease:
        return Lease(self.id, self.lease_owner or "", self.attempt)


@dataclass(frozen=True)
class Lease:
    """Identifies one claim of an execution: every worker write is guarded by it."""

    execution_id: str
    worker_id: str
    attempt: int

    def params(self) -> dict[str, Any]:
        return {"id": self.execution_id, "worker_id": self.worker_id, "attempt": self.attempt}


@dataclass(frozen=True)
class ProgressSnapshot:
    progress: float
    current_node: str | None
    current_node_id: str | None
    current_step: int | None
    total_steps: int | None
    completed_nodes: int


@dataclass(frozen=True)
class LogEntry:
    at: float
    event: str
    node_id: str | None
    message: str
    details: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Row) -> LogEntry:
        return cls(**{**row, "details": _json_or_none(row["details"])})


@dataclass(frozen=True)
class OutputRecord:
    id: str
    execution_id: str
    node_id: str
    output_type: str
    intermediate: bool
    filename: str
    content_type: str
    size_bytes: int
    width: int | None
    height: int | None
    format: str | None
    storage_provider: str
    storage_bucket: str | None
    storage_key: str
    created_at: float
    expires_at: float | None = None
    deleted_at: float | None = None
    public_access: bool = False
    delete_attempts: int = 0  # failed deletions by the retention cleaner
    delete_retry_at: float | None = None

    @classmethod
    def from_row(cls, row: Row) -> OutputRecord:
        return cls(**{**row, "intermediate": bool(row["intermediate"]),
                      "public_access": bool(row.get("public_access"))})

    def params(self) -> dict[str, Any]:
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        values["intermediate"] = int(self.intermediate)
        values["public_access"] = int(self.public_access)
        return values


@dataclass(frozen=True)
class WorkerState:
    id: str
    state: str
    gpu_type: str | None
    system_stats: dict[str, Any] | None
    current_execution_id: str | None
    region: str | None = None
    warm_models: tuple[str, ...] = ()
    gpu_type_declared: bool = False
    # Published with its catalog (PublishedEnvironment), not by its heartbeat; read back.
    environment: str | None = None
    environment_hash: str | None = None


def gpu_type_pattern(gpu_type: str | None) -> str:
    """The LIKE pattern (escape character \\) that finds `gpu_type` in a JSON array of GPU
    types, case-insensitively: plain text matching, cheaper than JSON functions in a claim."""
    quoted = json.dumps((gpu_type or "").lower())
    escaped = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class ClaimMatch:
    """What a worker brings to a claim: its GPU type, the model files warm in its ComfyUI
    and those on its disk, and how far model affinity may reorder the queue (see claim_next
    in claims.sql).

    `any_gpu_type`: a worker whose operator declared no GPU type takes jobs of every tier
    (tiers name GPU types like "T4", which a detected "NVIDIA GeForce RTX 4090" or "cpu"
    never matches; routing by type is something an operator opts into per worker)."""

    gpu_type: str | None = None
    warm_models: frozenset[str] = frozenset()
    affinity_window: int = 8
    affinity_max_wait: float = 30.0
    any_gpu_type: bool = False
    # The files on the worker's disk from its model cache, by placed name, `sha256:<hex>`
    # and `source:<key>` (at most models/inventory.py's DISK_AFFINITY_FILES files; not the
    # other files of its folders): affinity prefers loaded, then on disk. With neither this
    # nor warm models the claim takes the strict-order query.
    disk_models: frozenset[str] = frozenset()
    # The environment its engine runs (None: none, and then it takes only rows asking for
    # none); a row that asks for none is taken by any worker.
    environment: str | None = None
    environment_hash: str | None = None

    @property
    def holds_models(self) -> bool:
        return bool(self.warm_models or self.disk_models)

    def ready_params(self) -> dict[str, Any]:
        """The parameters of the claims' `_ready_for_worker` test (claims.sql)."""
        return {"gpu_pattern": "%" if self.any_gpu_type else gpu_type_pattern(self.gpu_type),
                "worker_environment": self.environment,
                "worker_environment_hash": (self.environment_hash or "").lower()}

    def params(self) -> dict[str, Any]:
        return {**self.ready_params(), "warm_models": json.dumps(sorted(self.warm_models)),
                "disk_models": json.dumps(sorted(self.warm_models | self.disk_models)),
                "affinity_window": max(1, self.affinity_window),
                "affinity_max_wait": float(self.affinity_max_wait)}


@dataclass(frozen=True)
class WebhookEvent:
    seq: int
    id: str
    execution_id: str | None
    url: str
    event_type: str
    data: dict[str, Any] | None
    payload: str | None
    created_at: float
    status: str
    attempts: int
    max_retries: int
    next_attempt_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    endpoint_id: str | None = None
    destination: str | None = None
    api_key_id: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> WebhookEvent:
        return cls(**{**row, "data": _json_or_none(row["data"])})


@dataclass(frozen=True)
class WebhookDelivery:
    id: int
    event_id: str
    attempt: int
    at: float
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_body: str | None = None
    response_truncated: bool | None = None

    @classmethod
    def from_row(cls, row: Row) -> WebhookDelivery:
        truncated = row.get("response_truncated")
        return cls(**{**row, "response_truncated": None if truncated is None
                      else bool(truncated)})
