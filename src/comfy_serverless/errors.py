"""The project's exceptions: one root, a small tree.

    ComfyServerlessError
    ├── ApiError                     answered to a client in the spec's error shape
    │   ├── AuthenticationFailed     401 UNAUTHORIZED
    │   ├── ExecutionNotFound        404 EXECUTION_NOT_FOUND
    │   ├── RequestInvalid           400 INVALID_REQUEST
    │   ├── WorkflowInvalid          400 WORKFLOW_VALIDATION_FAILED
    │   │   (and, elsewhere: WorkflowNotRunnable 422, FeatureUnavailable 422,
    │   │    ExecutionAlreadyFinished / ExecutionNotSuccessful 409, OutputFileMissing 404,
    │   │    OutputsExpired 410)
    │   ├── PayloadTooLarge          413 PAYLOAD_TOO_LARGE
    │   └── SignedUrlRefused         403 SIGNED_URL_INVALID
    ├── StoreError                   the database said no (driver errors are mapped here)
    │   ├── StoreConflict            a unique key was already taken
    │   └── StoreUnavailable         it cannot be reached now (down, restarting, full, busy)
    ├── EngineError                  ComfyUI misbehaved
    │   ├── EngineUnavailable        it does not answer (down, restarting)
    │   ├── EnginePromptRejected     POST /prompt answered 400 (its own validation)
    │   └── EngineInstallError       the installer could not set it up
    └── StorageError                 an output could not be written or read
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "ComfyServerlessError",
    "EngineError",
    "EngineInstallError",
    "EnginePromptRejected",
    "EngineUnavailable",
    "ExecutionNotFound",
    "PayloadTooLarge",
    "RequestInvalid",
    "SignedUrlRefused",
    "StorageError",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "WorkflowInvalid",
    "documentation_path",
]


def documentation_path(error_code: str) -> str:
    """Where this service documents an error code (served by GET /errors/{code})."""
    return f"/errors/{error_code}"


class ComfyServerlessError(Exception):
    """Root of every error this package raises on purpose."""


class ApiError(ComfyServerlessError):
    """An error with an HTTP status and the spec's error body."""

    status_code = 400
    error_code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "status": "error",
            "error_code": self.error_code,
            "message": self.message,
            "details": self.details,
            **self.extra,
        }


class AuthenticationFailed(ApiError):
    status_code = 401
    error_code = "UNAUTHORIZED"

    def __init__(self, message: str = "Invalid or missing API key") -> None:
        super().__init__(
            message,
            {
                "auth_required": True,
                "key_format": "Bearer {api_key}",
                "get_key_url": "/errors/UNAUTHORIZED",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )


class ExecutionNotFound(ApiError):
    status_code = 404
    error_code = "EXECUTION_NOT_FOUND"

    def __init__(self, execution_id: str) -> None:
        super().__init__(
            f"No execution {execution_id!r} for this API key",
            {"execution_id": execution_id},
        )


class RequestInvalid(ApiError):
    status_code = 400
    error_code = "INVALID_REQUEST"


class WorkflowInvalid(ApiError):
    status_code = 400
    error_code = "WORKFLOW_VALIDATION_FAILED"


class PayloadTooLarge(ApiError):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"


class SignedUrlRefused(ApiError):
    status_code = 403
    error_code = "SIGNED_URL_INVALID"


class StoreError(ComfyServerlessError):
    """The database refused or failed an operation."""


class StoreConflict(StoreError):
    """A row with the same unique key exists already."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or cannot serve now (a restart, too many connections,
    a locked file): a retry later may succeed. Answered 503 with Retry-After."""


class EngineError(ComfyServerlessError):
    """ComfyUI failed or answered something we cannot use."""


class EngineUnavailable(EngineError):
    """ComfyUI is not reachable (stopped, crashed or still starting)."""


class EnginePromptRejected(EngineError):
    """ComfyUI refused a prompt with its own validation (HTTP 400)."""

    def __init__(self, message: str, node_errors: dict[str, Any]) -> None:
        super().__init__(message)
        self.node_errors = node_errors


class EngineInstallError(EngineError):
    """Installing ComfyUI or its environment failed."""


class StorageError(ComfyServerlessError):
    """An output could not be stored or read back."""
