"""The one settings class. Built once at start-up and passed down, never imported as a global.

Every field is documented in docs/reference/configuration.md (a test keeps the two in step).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from comfy_serverless.costs import Prices
from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.logs import LogFormat
from comfy_serverless.model_sources import (
    DEFAULT_HF_ENDPOINT,
    HostCredential,
    Secret,
    SourcePolicy,
    hub_credential,
)
from comfy_serverless.storage.destinations import StorageDefaults
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.webhooks.ssrf import WebhookPolicy

__all__ = ["Settings"]

_PREFIX = "COMFY_SERVERLESS_"


def _default_engine_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "comfy-serverless" / "engine"


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _aliased(name: str) -> AliasChoices:
    """Accept both COMFY_SERVERLESS_<NAME> and the conventional bare <NAME>."""
    return AliasChoices(_PREFIX + name, name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", populate_by_name=True)

    # --- where things live ---
    data_dir: Path = Field(default=Path("data"))
    database_url: str | None = Field(default=None, validation_alias=_aliased("DATABASE_URL"))
    engine_dir: Path = Field(default_factory=_default_engine_dir)

    # --- logs ---
    log_format: LogFormat = "text"

    # --- HTTP API ---
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = None
    embedded_worker: bool = True
    api_processes: int = Field(default=1, ge=1, le=64)

    # --- the worker and its ComfyUI ---
    worker_id: str = Field(default_factory=_default_worker_id)
    comfyui_url: str | None = Field(default=None, validation_alias=_aliased("COMFYUI_URL"))
    comfyui_port: int = 0
    comfyui_extra_args: list[str] = Field(default_factory=list)
    comfyui_start_timeout: float = 180.0
    comfyui_preview_method: str = "auto"
    gpu_type: str | None = None
    lease_seconds: float = 30.0
    heartbeat_interval: float = 10.0
    poll_interval: float = 1.0
    cancel_poll_interval: float = 0.2
    progress_write_interval: float = 0.25
    default_retry_attempts: int = 0
    rescue_interval: float = 5.0
    priority_aging_seconds: float = 60.0
    watchdog_timeout: float = 60.0
    keep_engine_history: bool = False
    shutdown_grace: float = 30.0
    prefetch: int = 1
    catalog_refresh_interval: float = 60.0
    worker_region: str | None = None
    affinity_window: int = 8
    affinity_max_wait: float = 30.0
    # A workflow each worker runs on its ComfyUI before its first claim (worker/warmup.py).
    warmup_workflow: Path | None = None
    warmup_timeout: float = Field(default=600.0, gt=0, le=3600)

    # --- access: tiers, rate limits, versions ---
    tiers_file: Path | None = None
    redis_url: str | None = Field(default=None, validation_alias=_aliased("REDIS_URL"))
    api_deprecated: bool = False
    api_sunset: str | None = None
    max_active_preloads_per_key: int = Field(default=10, ge=1)
    upgrade_url: str | None = None

    # --- webhooks ---
    webhook_dispatcher: bool = True
    webhook_require_https: bool = True
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    webhook_max_retries: int = 3
    webhook_backoff_seconds: float = 2.0
    webhook_timeout: float = 10.0
    webhook_progress_interval: float = 1.0
    capacity_thresholds: list[float] = Field(default_factory=lambda: [0.0, 0.25])

    # --- outputs ---
    signing_secret: str | None = None
    signed_url_ttl: int = Field(default=8 * 3600, ge=1, le=7 * 24 * 3600)
    base64_max_bytes: int = 20 * 1024 * 1024
    output_path_template: str = "outputs/{execution_id}/"
    output_retention_days: int | None = None
    execution_retention_days: int = Field(default=0, ge=0)
    output_keep_workflow_metadata: bool = True
    retention_interval: float = 300.0
    s3_enabled: bool = False
    s3_bucket: str | None = None
    s3_allowed_buckets: list[str] = Field(default_factory=list)
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_addressing_style: str = "auto"
    s3_public_base_url: str | None = None
    s3_multipart_threshold: int = 8 * 1024 * 1024
    s3_multipart_chunksize: int = 8 * 1024 * 1024
    s3_max_concurrency: int = 2
    input_ca_bundle: Path | None = None
    input_fetch_timeout: float = 30.0

    # --- cost (cost_breakdown in results and webhooks) ---
    gpu_price_per_second: dict[str, float] = Field(default_factory=dict)
    storage_price_per_gb: float = 0.0
    bandwidth_price_per_gb: float = 0.0

    # --- limits and validation (spec §5.1) ---
    max_request_bytes: int = 10 * 1024 * 1024
    max_nodes: int = 100
    max_connections: int = 500
    max_execution_time: int = 3600
    max_string_length: int = 10_000
    max_numeric_value: float = 1_000_000
    numeric_limit_exemptions: list[str] = Field(
        default_factory=lambda: ["seed", "noise_seed", "color"])
    allowed_url_schemes: list[str] = Field(default_factory=lambda: ["https"])
    max_image_bytes: int = 50 * 1024 * 1024
    supported_image_formats: list[str] = Field(default_factory=lambda: ["png", "jpg", "webp"])
    node_blacklist: list[str] = Field(default_factory=lambda: ["ExecuteCode", "SystemCommand"])
    node_whitelist: list[str] = Field(default_factory=list)
    custom_nodes_enabled: bool = True
    custom_nodes_require_verification: bool = True
    verified_node_packs: list[str] = Field(default_factory=list)
    catalog_max_age: float = 86_400.0

    # --- outbound connections: webhooks, input images (issue #12) ---
    webhook_concurrency: int = Field(default=100, ge=1, le=10_000)
    webhook_per_destination: int = Field(default=4, ge=1, le=1_000)
    webhook_max_endpoints_per_key: int = Field(default=10, ge=1, le=10_000)
    outbound_reply_max_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    max_input_pixels: int = Field(default=4096 * 4096, ge=1)
    input_fetch_deadline: float = Field(default=60.0, gt=0)
    input_fetch_concurrency: int = Field(default=4, ge=1, le=64)

    # --- the HTTP edge (issue #12): hosts, server timeouts, /metrics ---
    trusted_hosts: list[str] = Field(default_factory=list)
    http_header_timeout: float = Field(default=10.0, gt=0)
    http_body_timeout: float = Field(default=60.0, gt=0)
    http_keep_alive_timeout: int = Field(default=5, ge=1)
    metrics_token: str | None = None

    # --- validation and submit-side policy (issue #12: graphs, names, values) ---
    max_input_depth: int = 32
    max_filename_prefix_length: int = 200
    max_node_inputs: int = 256
    max_input_overrides: int = 100
    # CheckpointSave, ModelSave, CLIPSave, VAESave, LoraSave, SaveLoRA: refused unless allowed
    allow_model_savers: bool = False

    # --- outbound, after the review of issue #12: DNS lookups, webhook keys ---
    outbound_dns_timeout: float = Field(default=5.0, gt=0, le=60)
    webhook_per_key: int = Field(default=8, ge=1, le=10_000)

    # --- fleet packaging (issue #16): a fleet that cannot work refuses to start ---
    fleet_identity_check: bool = True
    outputs_on_s3_only: bool = False

    # --- clients: the event stream and the sync mode (issue #14) ---
    stream_heartbeat_interval: float = Field(default=15.0, gt=0, le=300)
    stream_poll_interval: float = Field(default=0.25, gt=0, le=300)
    stream_max_per_key: int = Field(default=10, ge=1, le=10_000)

    # --- models by source (issue #15): fetched into a cache on each worker ---
    model_cache_max_gb: float = Field(default=100.0, gt=0)
    model_cache_dir: Path | None = None
    require_model_hashes: bool = False
    model_hash_allowlist: list[str] = Field(default_factory=list)
    model_source_credentials: dict[str, SecretStr] = Field(default_factory=dict)
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    hf_token: SecretStr | None = None

    # --- environments (issue #15): custom nodes and models from a manifest ---
    environment_dir: Path | None = None

    # --- the OpenAPI document's info and servers (spec §8, issue #14) ---
    api_title: str = "ComfyUI Serverless API"
    api_description: str = "Serverless API for ComfyUI workflow execution"
    api_contact_name: str | None = None
    api_contact_url: str | None = None
    api_contact_email: str | None = None
    api_license_name: str = "MIT"
    api_license_url: str | None = "https://opensource.org/licenses/MIT"
    api_servers: list[str] = Field(default_factory=list)

    def validation_rules(self) -> ValidationRules:
        return ValidationRules(
            max_nodes=self.max_nodes,
            max_connections=self.max_connections,
            max_execution_time=self.max_execution_time,
            max_string_length=self.max_string_length,
            max_numeric_value=self.max_numeric_value,
            numeric_limit_exemptions=tuple(self.numeric_limit_exemptions),
            allowed_url_schemes=tuple(s.lower() for s in self.allowed_url_schemes),
            max_image_bytes=self.max_image_bytes,
            supported_image_formats=tuple(self.supported_image_formats),
            node_blacklist=tuple(self.node_blacklist),
            node_whitelist=tuple(self.node_whitelist),
            custom_nodes_enabled=self.custom_nodes_enabled,
            custom_nodes_require_verification=self.custom_nodes_require_verification,
            verified_node_packs=tuple(self.verified_node_packs),
            max_input_depth=self.max_input_depth,
            max_filename_prefix_length=self.max_filename_prefix_length,
            max_node_inputs=self.max_node_inputs,
            max_input_overrides=self.max_input_overrides,
            allow_model_savers=self.allow_model_savers,
        )

    def storage_defaults(self) -> StorageDefaults:
        return StorageDefaults(
            path_template=self.output_path_template, s3_configured=self.s3_enabled,
            s3_bucket=self.s3_bucket, s3_allowed_buckets=tuple(self.s3_allowed_buckets),
            retention_days=self.output_retention_days, s3_only=self.outputs_on_s3_only)
    def prices(self) -> Prices:
        return Prices(self.gpu_price_per_second, self.storage_price_per_gb,
                      self.bandwidth_price_per_gb)

    def webhook_policy(self) -> WebhookPolicy:
        return WebhookPolicy(require_https=self.webhook_require_https,
                             allowed_networks=tuple(self.webhook_allowed_networks),
                             resolve_timeout=self.outbound_dns_timeout)

    def model_cache_root(self) -> Path:
        """The model cache: by default `.cs-cache` inside the engine's models folder, a
        folder ComfyUI does not scan. Fetched files are placed (linked) in its parent's
        model folders (`checkpoints/`, `loras/` …), so that parent must be a folder
        ComfyUI reads models from."""
        return self.model_cache_dir or EngineLayout(self.engine_dir).models_dir / ".cs-cache"

    def resolved_environment_dir(self) -> Path:
        """Where `engine install --manifest` puts an environment's custom nodes and its
        record (environments/record.py): by default `environment` in the engine folder."""
        return self.environment_dir or self.engine_dir / "environment"

    def model_source_policy(self, allowed_hosts: Sequence[str]) -> SourcePolicy:
        """The policy for a tier whose `model_sources` are `allowed_hosts`: the SSRF rules of
        input images, the operator's per-host credentials and Hugging Face token, and the
        sha256 allowlist when require_model_hashes is on."""
        credentials = [hub_credential(self.hf_endpoint, Secret(self.hf_token.get_secret_value()))
                       ] if self.hf_token is not None else []  # its exact host comes first
        credentials += [HostCredential(host, Secret(value.get_secret_value()))
                        for host, value in self.model_source_credentials.items()]
        hashes = frozenset(digest.lower() for digest in self.model_hash_allowlist)
        return SourcePolicy(
            destinations=replace(self.webhook_policy(),
                                 require_https="http" not in self.allowed_url_schemes),
            allowed_hosts=tuple(allowed_hosts), credentials=tuple(credentials),
            required_hashes=hashes if self.require_model_hashes else None)

    def live_window(self) -> float:
        """How recently a worker must have sent a heartbeat to count as live."""
        return 3 * self.heartbeat_interval

    def base_url(self) -> str:
        """Where clients reach this API: public_base_url, else the address `serve` binds."""
        return self.public_base_url or f"http://{self.host}:{self.port}"

    def resolved_data_dir(self) -> Path:
        path = self.data_dir.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'comfy-serverless.db'}"

    def storage_dir(self) -> Path:
        """Root of local storage; keys such as `outputs/<execution_id>/<file>` live below."""
        return self.resolved_data_dir() / "storage"

    def comfyui_dir(self) -> Path:
        """Per-data-folder ComfyUI state: its input, output, temp folders and database."""
        return self.resolved_data_dir() / "comfyui"

    def resolved_signing_secret(self) -> str:
        """The URL-signing secret: configured, or made once and kept in the data folder.

        Written to a temporary file and linked into place, so that processes starting
        together all read the same, complete secret.
        """
        if self.signing_secret:
            return self.signing_secret
        secret_file = self.resolved_data_dir() / "signing-secret"
        if not secret_file.exists():
            partial = secret_file.with_name(f"signing-secret.{os.getpid()}.partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            with contextlib.suppress(FileExistsError):
                os.link(partial, secret_file)
            partial.unlink()
        return secret_file.read_text().strip()
