"""Builds the long-lived parts of a process (store, storage, worker) from Settings."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from comfy_serverless.access.gate import AccessGate
from comfy_serverless.access.rate_limit import build_rate_limiter
from comfy_serverless.access.tiers import load_access_policy
from comfy_serverless.auth.authenticator import KeyAuthenticator
from comfy_serverless.engine.comfyui.installer import EngineLayout, install_engine
from comfy_serverless.engine.comfyui.supervisor import (
    AttachedEngine,
    Engine,
    EngineProcessConfig,
    SupervisedEngine,
)
from comfy_serverless.environments.install import custom_nodes_dir, lock_path, models_dir
from comfy_serverless.environments.record import record_path
from comfy_serverless.executions.catalogs import CatalogCache
from comfy_serverless.executions.estimates import Estimator
from comfy_serverless.executions.submitter import Submitter
from comfy_serverless.inputs.fetcher import FetchPolicy
from comfy_serverless.inputs.staging import InputStager
from comfy_serverless.model_sources import ModelCache, Transport
from comfy_serverless.queue.housekeeping import Housekeeping
from comfy_serverless.queue.rescuer import Rescuer
from comfy_serverless.settings import Settings
from comfy_serverless.storage.base import OutputStorage
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.router import StorageRouter
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.store import Store
from comfy_serverless.worker.model_fetch import ModelFetcher
from comfy_serverless.worker.wakeups import Wakeups
from comfy_serverless.worker.warmup import WarmupPlan
from comfy_serverless.worker.worker import Worker
from comfy_serverless.worker.worker_config import WorkerConfig

if TYPE_CHECKING:
    from comfy_serverless.storage.s3 import S3Config, S3Storage

__all__ = [
    "Services",
    "build_engine",
    "build_housekeeping",
    "build_model_cache",
    "build_rescuer",
    "build_s3",
    "build_worker",
    "open_services",
]


@dataclass
class Services:
    """The long-lived parts of one process.

    Two storages, named for what they hold: `local_storage` is the local disk backend alone,
    which serves the signed `/files` URLs; `storage_router` is every configured backend
    (local disk, S3), chosen per stored location's provider, for writing and reading
    outputs and inputs.
    """

    settings: Settings
    store: Store
    local_storage: LocalStorage
    wakeups: Wakeups
    estimator: Estimator
    catalogs: CatalogCache
    access: AccessGate
    storage_router: StorageRouter
    inputs: InputStager
    submitter: Submitter
    keys: KeyAuthenticator


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    store = await Store.open(settings.resolved_database_url())
    try:
        await store.migrate()
        signer = UrlSigner(settings.resolved_signing_secret())
        local_storage = LocalStorage(settings.storage_dir(), signer)
        catalogs = CatalogCache(store, max_age=settings.catalog_max_age)
        storage_router = StorageRouter(local_storage, build_s3(settings))
        access = AccessGate(load_access_policy(settings.tiers_file),
                            build_rate_limiter(settings.redis_url))
        wakeups, estimator = Wakeups(), Estimator(store)
        inputs = build_input_stager(settings, storage_router)
        submitter = Submitter(settings, store, access, catalogs, inputs, estimator,
                              wake=wakeups.work_available)
        try:
            yield Services(settings, store, local_storage, wakeups, estimator, catalogs, access,
                           storage_router, inputs, submitter, KeyAuthenticator(store))
        finally:
            await access.close()
    finally:
        await store.close()


def build_input_stager(settings: Settings, storage: OutputStorage) -> InputStager:
    """Fetches and checks input images at submit (spec §5: https, size, formats, SSRF)."""
    rules = settings.validation_rules()
    policy = FetchPolicy(
        destinations=dataclasses.replace(
            settings.webhook_policy(), require_https="http" not in rules.allowed_url_schemes),
        max_bytes=rules.max_image_bytes, formats=rules.supported_image_formats,
        timeout=settings.input_fetch_timeout, ca_bundle=settings.input_ca_bundle,
        max_pixels=settings.max_input_pixels, deadline=settings.input_fetch_deadline,
        concurrency=settings.input_fetch_concurrency)
    return InputStager(policy, storage, settings.resolved_data_dir() / "spool")


def build_s3(settings: Settings) -> S3Storage | None:
    """The S3 backend, when the deployment enables it. boto3 is imported only then, so a
    deployment without S3 (the offline GPU check's) needs no boto3."""
    if not settings.s3_enabled:
        return None
    from comfy_serverless.storage.s3 import S3Config, S3Storage

    return S3Storage(S3Config(
        endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        addressing_style=settings.s3_addressing_style,
        public_base_url=settings.s3_public_base_url, default_bucket=settings.s3_bucket,
        multipart_threshold=settings.s3_multipart_threshold,
        multipart_chunksize=settings.s3_multipart_chunksize,
        max_concurrency=settings.s3_max_concurrency))


def build_rescuer(services: Services) -> Rescuer:
    """The rescue pass (expired leases, priority aging) of every API and worker process."""
    settings = services.settings
    return Rescuer(services.store, interval=settings.rescue_interval,
                   aging_seconds=settings.priority_aging_seconds,
                   on_failed=services.inputs.discard)


def build_housekeeping(services: Services) -> Housekeeping:
    """The tidying pass (planner statistics, expired keys, departed workers, preloads,
    execution retention, and the tally folder it starts) of every API and worker process."""
    return Housekeeping(services.store,
                        execution_retention_days=services.settings.execution_retention_days)


def build_engine(settings: Settings) -> Engine:
    """Attach to COMFYUI_URL when set; otherwise supervise a local ComfyUI child."""
    if settings.comfyui_url:
        return AttachedEngine(settings.comfyui_url)
    layout = install_engine(EngineLayout(settings.engine_dir))
    environment = settings.resolved_environment_dir()
    return SupervisedEngine(EngineProcessConfig(
        layout=layout,
        state_dir=settings.comfyui_dir(),
        port=settings.comfyui_port,
        extra_args=tuple(settings.comfyui_extra_args),
        start_timeout=settings.comfyui_start_timeout,
        preview_method=settings.comfyui_preview_method,
        extra_custom_nodes=custom_nodes_dir(environment),
        extra_models=models_dir(environment),
        environment_record=record_path(environment),
        environment_lock=lock_path(environment),
    ))


def build_worker(services: Services, engine: Engine) -> Worker:
    settings = services.settings
    config = WorkerConfig(
        worker_id=settings.worker_id,
        spool_dir=settings.resolved_data_dir() / "spool",
        gpu_type=settings.gpu_type,
        lease_seconds=settings.lease_seconds,
        heartbeat_interval=settings.heartbeat_interval,
        poll_interval=settings.poll_interval,
        cancel_poll_interval=settings.cancel_poll_interval,
        progress_write_interval=settings.progress_write_interval,
        catalog_refresh_interval=settings.catalog_refresh_interval,
        shutdown_grace=settings.shutdown_grace,
        prefetch=settings.prefetch,
        webhook_max_retries=settings.webhook_max_retries,
        watchdog_timeout=settings.watchdog_timeout,
        progress_event_interval=settings.webhook_progress_interval,
        region=settings.worker_region,
        affinity_window=settings.affinity_window,
        affinity_max_wait=settings.affinity_max_wait,
        model_facts_file=settings.resolved_data_dir() / "model-facts.json",
        keep_workflow_metadata=settings.output_keep_workflow_metadata,
        keep_engine_history=settings.keep_engine_history,
        environment_dir=settings.resolved_environment_dir(),
        loaded_environment=(engine.loaded_environment_record
                            if isinstance(engine, SupervisedEngine) else None),
        warmup=warmup_plan(settings),
    )
    return Worker(config, services.store, engine, services.storage_router, services.wakeups,
                  build_model_fetcher(services, config))


def warmup_plan(settings: Settings) -> WarmupPlan | None:
    """The warm-up workflow, read now: a missing or unreadable file stops the start
    (WarmupFileError) rather than leaving a worker that never becomes ready."""
    if settings.warmup_workflow is None:
        return None
    return WarmupPlan.load(settings.warmup_workflow.expanduser(),
                           timeout=settings.warmup_timeout, rules=settings.validation_rules())


def build_model_fetcher(services: Services, config: WorkerConfig) -> ModelFetcher:
    """The worker's model cache (see build_model_cache), made at its first use."""
    settings = services.settings
    transport = _model_transport(settings)  # made now: a bad CA bundle fails at start
    root = settings.model_cache_root()
    return ModelFetcher(lambda: build_model_cache(settings, transport), root.parent,
                        settings.model_source_policy, settings.hf_endpoint,
                        services.store, config.executor_config())


def build_model_cache(settings: Settings, transport: Transport | None = None) -> ModelCache:
    """The machine's model cache (model_cache_root, within model_cache_max_gb), reaching
    sources with the input images' CA bundle and the operator's S3 settings: the worker's,
    and `engine install --manifest`'s."""
    max_bytes = int(settings.model_cache_max_gb * 1024 ** 3)
    return ModelCache(settings.model_cache_root(), max_bytes=max_bytes,
                      transport=transport or _model_transport(settings))


def _model_transport(settings: Settings) -> Transport:
    return Transport(_tls_context(settings), timeout=settings.input_fetch_timeout * 2,
                     s3=_s3_source_config(settings))


def _s3_source_config(settings: Settings) -> S3Config | None:
    """The S3 settings s3:// sources are read with; None (boto3's own chain, imported only
    when an s3 source is read) when the operator configured no S3."""
    if not (settings.s3_enabled or settings.s3_endpoint_url or settings.s3_access_key_id):
        return None
    from comfy_serverless.storage.s3 import S3Config

    return S3Config(endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                    access_key_id=settings.s3_access_key_id,
                    secret_access_key=settings.s3_secret_access_key,
                    addressing_style=settings.s3_addressing_style)


def _tls_context(settings: Settings) -> ssl.SSLContext:
    if settings.input_ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.input_ca_bundle))
    return ssl.create_default_context()
