"""What a client asks to run, in the domain's terms: the Submitter's input.

The HTTP layer parses and bounds the body (api/schemas.py) and builds a SubmitRequest from
it and the request's headers; nothing below the API knows the HTTP schema. Each part keeps
its fields in the order the spec lists them; the execution's stored options (store/options.py)
are built from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comfy_serverless.environments.requests import EnvironmentRequest
from comfy_serverless.store.options import NotifyOptions, RunOptions

__all__ = [
    "Idempotency",
    "NotifyRequest",
    "OutputRequest",
    "RunRequest",
    "SubmitRequest",
]


@dataclass(frozen=True)
class OutputRequest:
    """The body's `output_config`: the files' format, and where they go."""

    format: str
    quality: int
    compression: str | None
    # Only the storage fields the client set: the ones left out take the server's defaults.
    storage: Mapping[str, Any]


@dataclass(frozen=True)
class RunRequest:
    """The body's `execution_config`: how the execution runs."""

    priority: int
    timeout: int | None
    gpu_memory_fraction: float | None
    batch_size: int | None
    enable_optimization: bool
    retry_attempts: int | None

    def as_options(self, timeout: int) -> RunOptions:
        """As the execution's options store it, with the timeout it was given."""
        return RunOptions(self.priority, timeout, self.gpu_memory_fraction, self.batch_size,
                          self.enable_optimization, self.retry_attempts)


@dataclass(frozen=True)
class NotifyRequest:
    """The body's `notification_config`: the execution's webhook and what it reports."""

    webhook_url: str | None
    webhook_secret: str | None
    include_progress: bool
    include_intermediate: bool

    def as_options(self) -> NotifyOptions:
        """As the execution's options store it: everything but the secret."""
        return NotifyOptions(self.webhook_url, self.include_progress,
                             self.include_intermediate)


@dataclass(frozen=True)
class Idempotency:
    """The request id a retry repeats (X-Request-ID, or its alias Idempotency-Key), and
    `fingerprint`: what makes two requests the same request (the body and the headers
    that shape the execution), compared when a request id comes back."""

    request_id: str | None
    alias: str | None
    fingerprint: object


@dataclass(frozen=True)
class SubmitRequest:
    workflow: dict[str, Any]
    input_overrides: Mapping[str, Any]
    output: OutputRequest
    run: RunRequest
    notify: NotifyRequest
    webhook_header: str | None  # X-Webhook-URL, used when the body names no webhook
    client_id: str | None
    idempotency: Idempotency
    # The body's `model_sources`: the sha256 that pins each model source a loader input names.
    model_sources: Mapping[str, str] = field(default_factory=dict)
    # The body's `environment`: only workers that run it may claim the execution.
    environment: EnvironmentRequest | None = None

    @property
    def webhook_url(self) -> str | None:
        return self.notify.webhook_url or self.webhook_header

    @property
    def webhook_field(self) -> str:
        """Where the webhook URL came from, for a refusal to name: the body's field wins."""
        if self.notify.webhook_url:
            return "notification_config.webhook_url"
        return "X-Webhook-URL"
