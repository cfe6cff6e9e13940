"""Results whose files the retention cleaner has deleted answer 410 OUTPUTS_EXPIRED."""

from __future__ import annotations

from comfy_serverless.errors import ApiError
from comfy_serverless.store.records import ExecutionRecord, OutputRecord
from comfy_serverless.timefmt import utc_iso

__all__ = ["OutputsExpired", "raise_if_expired"]


class OutputsExpired(ApiError):
    status_code = 410
    error_code = "OUTPUTS_EXPIRED"


def raise_if_expired(execution: ExecutionRecord, outputs: list[OutputRecord]) -> None:
    deleted = [output for output in outputs if output.deleted_at is not None]
    if not deleted:
        return
    retention = execution.options.output.storage.retention_days
    raise OutputsExpired(
        f"The outputs of execution {execution.id} were deleted when their retention of "
        f"{retention} day(s) ran out",
        {"execution_id": execution.id, "retention_days": retention,
         "expired_at": utc_iso(min(o.expires_at or o.created_at for o in deleted)),
         "deleted_at": utc_iso(min(o.deleted_at or 0.0 for o in deleted)),
         "deleted_outputs": len(deleted), "total_outputs": len(outputs)})
