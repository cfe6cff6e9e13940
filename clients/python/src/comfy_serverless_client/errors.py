"""The SDK's exceptions. Every error the API answers carries the spec's fields.

    ComfyServerlessError
     ├── TransportError          the service could not be reached (after the retries)
     └── ApiError                an error body: status_code, error_code, message, details
          ├── BadRequest         400, 422: the request or the workflow is invalid
          ├── Unauthorized       401
          ├── Forbidden          403
          ├── NotFound           404
          ├── Conflict           409
          │    └── ExecutionFailed   EXECUTION_NOT_SUCCESSFUL: it failed or was cancelled
          ├── RateLimited        429: retry_after seconds (already waited out `max_retries` times)
          └── ServerError        5xx
"""

from __future__ import annotations

from typing import Any

from comfy_serverless_client.models import ErrorBody

__all__ = [
    "ApiError", "BadRequest", "ComfyServerlessError", "Conflict", "ExecutionFailed", "Forbidden",
    "NotFound", "RateLimited", "ServerError", "TransportError", "Unauthorized", "error_for",
]


class ComfyServerlessError(Exception):
    """The root of every error the SDK raises."""


class TransportError(ComfyServerlessError):
    """The service could not be reached, or the connection broke, after the retries."""


class ApiError(ComfyServerlessError):
    def __init__(self, status_code: int, body: ErrorBody, retry_after: float | None = None
                 ) -> None:
        super().__init__(f"{status_code} {body.error_code}: {body.message}")
        self.status_code = status_code
        self.body = body
        self.error_code = body.error_code
        self.message = body.message
        self.details: dict[str, Any] = body.details
        self.retry_info = body.retry_info
        self.retry_after = retry_after


class BadRequest(ApiError): ...


class Unauthorized(ApiError): ...


class Forbidden(ApiError): ...


class NotFound(ApiError): ...


class Conflict(ApiError): ...


class ExecutionFailed(Conflict):
    """The execution ended failed or cancelled: `details["status"]` says which."""


class RateLimited(ApiError): ...


class ServerError(ApiError): ...


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    422: BadRequest, 429: RateLimited,
}


def error_for(status_code: int, body: ErrorBody, retry_after: float | None) -> ApiError:
    """The most specific exception for an error answer."""
    if body.error_code == "EXECUTION_NOT_SUCCESSFUL":
        return ExecutionFailed(status_code, body, retry_after)
    kind = _BY_STATUS.get(status_code, ServerError if status_code >= 500 else ApiError)
    return kind(status_code, body, retry_after)
