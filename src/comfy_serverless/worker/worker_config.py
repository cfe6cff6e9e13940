"""The settings one worker runs under, and the parts of them its collaborators take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from comfy_serverless.store.records import ClaimMatch
from comfy_serverless.worker.environment_watch import EnvironmentWatch
from comfy_serverless.worker.execution_context import ExecutorConfig
from comfy_serverless.worker.model_keeper import ModelKeeperConfig
from comfy_serverless.worker.warmup import WarmupPlan

__all__ = ["WorkerConfig"]

@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str
    spool_dir: Path
    gpu_type: str | None = None
    lease_seconds: float = 30.0
    heartbeat_interval: float = 10.0
    poll_interval: float = 1.0
    cancel_poll_interval: float = 0.2
    progress_write_interval: float = 0.25
    silence_check_interval: float = 5.0
    watchdog_timeout: float = 60.0
    progress_event_interval: float = 1.0
    catalog_refresh_interval: float = 60.0
    shutdown_grace: float = 30.0
    prefetch: int = 1
    webhook_max_retries: int = 3
    keep_workflow_metadata: bool = True
    keep_engine_history: bool = False
    region: str | None = None
    affinity_window: int = 8
    affinity_max_wait: float = 30.0
    model_facts_file: Path | None = None
    warmup: WarmupPlan | None = None  # run before the first claim, and after each restart
    # Where the installer records the environment the engine runs (None: none).
    environment_dir: Path | None = None
    # The record as its supervised ComfyUI loaded it (None: read the installer's record).
    loaded_environment: Path | None = None

    def claim_match(self, gpu_type: str | None, warm_models: frozenset[str],
                    disk_models: frozenset[str], environment: EnvironmentWatch) -> ClaimMatch:
        """What the worker brings to a claim now: its GPU type (a worker that declares none
        takes every tier's jobs), its warm and on-disk models and the environment its engine
        runs."""
        return ClaimMatch(gpu_type=gpu_type, any_gpu_type=self.gpu_type is None,
                          warm_models=warm_models, disk_models=disk_models,
                          affinity_window=self.affinity_window,
                          affinity_max_wait=self.affinity_max_wait,
                          **environment.claim_fields())

    def model_keeper_config(self) -> ModelKeeperConfig:
        return ModelKeeperConfig(
            worker_id=self.worker_id, region=self.region,
            interval=min(self.heartbeat_interval, 5.0),
            rescan_interval=self.catalog_refresh_interval)

    def executor_config(self) -> ExecutorConfig:
        return ExecutorConfig(
            worker_id=self.worker_id,
            lease_seconds=self.lease_seconds,
            heartbeat_interval=self.heartbeat_interval,
            cancel_poll_interval=self.cancel_poll_interval,
            progress_write_interval=self.progress_write_interval,
            silence_check_interval=self.silence_check_interval,
            watchdog_timeout=self.watchdog_timeout,
            progress_event_interval=self.progress_event_interval,
            keep_engine_history=self.keep_engine_history,
        )
