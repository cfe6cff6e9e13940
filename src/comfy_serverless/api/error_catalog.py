"""Every error_code this service answers with: its status, when it happens, what to do.

The single source for the pages served at /errors/{code} (each error body's
`documentation_url`) and for docs/reference/errors.md (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass

from comfy_serverless.errors import documentation_path

__all__ = ["ERRORS", "ErrorDoc", "documentation_path"]


@dataclass(frozen=True)
class ErrorDoc:
    code: str
    status: int
    when: str
    fix: str


ERRORS: tuple[ErrorDoc, ...] = (
    ErrorDoc("INVALID_REQUEST", 400,
             "The body or a parameter does not match the schema (each field is named in "
             "details.validation_errors), or a value is out of the service's range.",
             "Correct the named fields."),
    ErrorDoc("WORKFLOW_VALIDATION_FAILED", 400,
             "The workflow is broken: its structure, a missing input, a link between "
             "incompatible types, a value out of range or not among the options, or a value "
             "beyond the service's input limits.",
             "Each entry of details.validation_errors and details.invalid_connections names the "
             "node and carries a suggestion; details.missing_nodes names node classes to add."),
    ErrorDoc("INVALID_WEBHOOK_URL", 400,
             "A webhook URL that is not https (unless configured otherwise) or whose host "
             "resolves to a private, loopback or link-local address that is not allowlisted. "
             "It is refused without any connection to it.",
             "Use a public https URL."),
    ErrorDoc("HOST_NOT_ALLOWED", 400,
             "The request's Host header names a host outside trusted_hosts (when the operator "
             "set trusted_hosts). Answered before the key or the body is looked at.",
             "Call the service by the host name its operator publishes."),
    ErrorDoc("UNAUTHORIZED", 401,
             "No Authorization header, one that is not 'Bearer {api_key}', or an unknown or "
             "revoked key.",
             "Send a valid key: comfy-serverless keys create."),
    ErrorDoc("FORBIDDEN", 403,
             "The key lacks the scope the route needs: admin routes need an admin-scoped key; "
             "a public key (comfyui_pk_) may only submit, read and cancel its own executions "
             "and list models.",
             "Use a secret key, or an admin-scoped one: comfy-serverless keys create --admin."),
    ErrorDoc("MODEL_NOT_ALLOWED", 403,
             "The workflow (or a preload) names a model outside the model groups of the key's "
             "tier (details.models, details.allowed_model_groups), or a model source whose "
             "host is not in the tier's model_sources, whose address is internal, or whose "
             "sha256 require_model_hashes refuses (details.field, details.model_source).",
             "Use a model of your tier's groups or a source the operator allows, or a key of "
             "a higher tier."),
    ErrorDoc("TIMEOUT_LIMIT_EXCEEDED", 403,
             "execution_config.timeout is above the timeout_limit of the key's tier.",
             "Ask for at most details.timeout_limit seconds, or use a higher tier."),
    ErrorDoc("METRICS_DISABLED", 403,
             "GET /metrics on a service that listens beyond loopback with no metrics_token set: "
             "fleet figures are not served to whoever reaches the port.",
             "Ask the operator to set metrics_token, then scrape with 'Bearer {metrics_token}'."),
    ErrorDoc("SIGNED_URL_INVALID", 403,
             "A download URL whose signature does not match (tampered with) or that has expired "
             "(details.reason).",
             "Fetch the results again for fresh URLs."),
    ErrorDoc("EXECUTION_NOT_FOUND", 404,
             "No execution with this id for this API key (another key's executions are never "
             "revealed).",
             "Check the id and the key that submitted it."),
    ErrorDoc("NOT_FOUND", 404, "No such route.", "Check the path and the API version."),
    ErrorDoc("API_VERSION_NOT_FOUND", 404,
             "A path under an API version this service does not serve (e.g. /v2/…); "
             "details.supported_versions lists the ones it does.",
             "Use /v1/."),
    ErrorDoc("API_KEY_NOT_FOUND", 404, "No API key with this id (admin key routes).",
             "List the keys: GET /v1/admin/keys or comfy-serverless keys list."),
    ErrorDoc("WEBHOOK_ENDPOINT_NOT_FOUND", 404, "No such registered webhook endpoint for "
             "this key.", "List them: GET /v1/webhooks."),
    ErrorDoc("WEBHOOK_ENDPOINT_LIMIT", 409, "The key already has as many webhook endpoints as "
             "webhook_max_endpoints_per_key allows (details.max_endpoints).",
             "Delete an endpoint you no longer need: DELETE /v1/webhooks/{id}."),
    ErrorDoc("WEBHOOK_EVENT_NOT_FOUND", 404, "No such webhook event for this execution.",
             "List the execution's events: GET /v1/workflows/{id}/webhooks."),
    ErrorDoc("OUTPUT_NOT_FOUND", 404,
             "The stored file behind a valid download URL no longer exists.",
             "The output was removed; run the workflow again."),
    ErrorDoc("MODEL_NOT_FOUND", 404,
             "A preload names a model_id that no live worker holds (details.unknown_models, "
             "with close matches in details.suggestions).",
             "Use a model_id from GET /v1/models/list."),
    ErrorDoc("METHOD_NOT_ALLOWED", 405, "The route exists but not with this method.",
             "Use the method the API reference gives."),
    ErrorDoc("REQUEST_TIMEOUT", 408,
             "The request body did not arrive within http_body_timeout seconds of its headers "
             "(a slow or stalled upload). The connection is closed.",
             "Send the body at once; retry on a faster link."),
    ErrorDoc("EXECUTION_ALREADY_FINISHED", 409,
             "Cancel of an execution that has already completed, failed or been cancelled.",
             "Nothing to cancel; read its status or results."),
    ErrorDoc("EXECUTION_NOT_SUCCESSFUL", 409,
             "Results of an execution that failed or was cancelled; details carry the failure "
             "(error_type, failed_node) and retry_info.",
             "Fix what details name and submit again."),
    ErrorDoc("WEBHOOK_EVENT_PENDING", 409,
             "Redelivery of an event that is still waiting for, or in, a delivery attempt.",
             "Wait until the event is delivered or failed."),
    ErrorDoc("IDEMPOTENCY_KEY_REUSED", 409,
             "An X-Request-ID (or Idempotency-Key) already used within 24 h by this key for a "
             "different request; details.execution_id is the execution it names.",
             "Send a new request id for a new request; resend the same body to get the "
             "original execution back."),
    ErrorDoc("OUTPUTS_EXPIRED", 410,
             "Results of an execution whose outputs were deleted from storage when their "
             "retention (output_config.storage.retention_days) ran out; details carry "
             "retention_days, expired_at and deleted_at.",
             "Run the workflow again; ask for a longer retention_days if you need the files "
             "longer."),
    ErrorDoc("PAYLOAD_TOO_LARGE", 413,
             "A request body above max_request_bytes, or base64 results above base64_max_bytes.",
             "Send a smaller body; fetch large results with download_format=urls."),
    ErrorDoc("WORKFLOW_NOT_RUNNABLE", 422,
             "A sound workflow this deployment cannot run: a node class or a model on no worker, "
             "a node class the deny list or allow list refuses, or a custom node from an "
             "unverified pack.",
             "Use the suggested node class or model, or ask the operator to install it."),
    ErrorDoc("MODEL_NOT_PRELOADABLE", 422,
             "A preload names a model that cannot be loaded on its own (a LoRA or an embedding "
             "needs a model to apply to).",
             "Preload the checkpoint it goes with (details.preloadable_categories)."),
    ErrorDoc("FEATURE_UNAVAILABLE", 422,
             "A valid option this deployment cannot honour (e.g. storage.provider s3 where S3 "
             "is not configured).",
             "Leave the option out or use a supported value (details.supported)."),
    ErrorDoc("RATE_LIMIT_EXCEEDED", 429,
             "Too many requests per minute for the key (details.limit = requests_per_minute), "
             "or the key already has its tier's concurrent_executions queued or running "
             "(details.current_executions, details.max_concurrent).",
             "Wait details.retry_after seconds (also in Retry-After); X-RateLimit-Remaining "
             "shows the budget left."),
    ErrorDoc("QUEUE_FULL", 429,
             "The key's tier already has its max_queue_size executions waiting in the queue.",
             "Retry after Retry-After seconds, or use a higher tier."),
    ErrorDoc("QUOTA_EXCEEDED", 429,
             "The key has used its monthly_quota of executions this calendar month (UTC).",
             "Wait until details.resets_at, or ask for a higher quota."),
    ErrorDoc("STREAM_LIMIT_EXCEEDED", 429,
             "The key already has stream_max_per_key event streams "
             "(GET /v1/workflows/{id}/events) open on this API replica "
             "(details.open_streams, details.max_streams).",
             "Close a stream you no longer read, or retry after Retry-After seconds."),
    ErrorDoc("PRELOAD_LIMIT_EXCEEDED", 429,
             "The key already keeps max_active_preloads_per_key models preloaded "
             "(details.active_preloads, details.expires_next).",
             "Wait until a preload expires, or preload fewer models with a shorter "
             "cache_duration."),
    ErrorDoc("INTERNAL_ERROR", 500,
             "A bug. The body carries an incident_id that is in the server's log; no internals "
             "are shown.",
             "Retry; report the incident_id if it persists."),
    ErrorDoc("STORAGE_UNAVAILABLE", 502,
             "The output storage (local disk or S3) failed while the request read or wrote a "
             "file. Nothing was queued.",
             "Retry after the Retry-After header's seconds."),
    ErrorDoc("STORE_UNAVAILABLE", 503,
             "The database does not answer now: down, restarting, out of connections, or "
             "(SQLite) locked for longer than 10 s. A request answered so changed nothing, "
             "unless it was a submit whose answer was lost after its execution was stored "
             "(send an X-Request-ID to retry safely).",
             "Retry after the Retry-After header's seconds."),
)

