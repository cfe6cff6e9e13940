"""comfy-serverless-client: the Python SDK of the comfy-serverless API.

`Client` and `AsyncClient` submit workflows (always with an idempotency key), honour
Retry-After, stream an execution's events (`run(…, on_progress=…)`), fetch and download its
results, and raise typed errors carrying the spec's fields. `verify_webhook` checks either
webhook signature scheme.
"""

from comfy_serverless_client._core import RetryPolicy
from comfy_serverless_client.async_client import AsyncClient
from comfy_serverless_client.client import Client
from comfy_serverless_client.errors import (
    ApiError,
    BadRequest,
    ComfyServerlessError,
    Conflict,
    ExecutionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)
from comfy_serverless_client.models import (
    Accepted,
    Cancelled,
    ErrorBody,
    ExecutionStatus,
    LogEntry,
    Output,
    Progress,
    Results,
    StreamEvent,
)
from comfy_serverless_client.webhooks import (
    verify_standard_webhook,
    verify_webhook,
    verify_webhook_signature,
)

__all__ = [
    "Accepted", "ApiError", "AsyncClient", "BadRequest", "Cancelled", "Client",
    "ComfyServerlessError", "Conflict", "ErrorBody", "ExecutionFailed", "ExecutionStatus",
    "Forbidden", "LogEntry", "NotFound", "Output", "Progress", "RateLimited", "Results",
    "RetryPolicy", "ServerError", "StreamEvent", "TransportError", "Unauthorized",
    "verify_standard_webhook", "verify_webhook", "verify_webhook_signature",
]
