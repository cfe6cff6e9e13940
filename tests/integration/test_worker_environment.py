"""The worker's environment against a fake ComfyUI, on a real SQLite store: it reads the
installer's record when its ComfyUI starts, publishes it, claims by it, and reads it again
only after its ComfyUI restarts (custom nodes load at start)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from comfy_serverless.auth.keys import issue_key
from comfy_serverless.environments.record import (
    InstalledEnvironment,
    InstalledNode,
    write_installed,
)
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution
from comfy_serverless.store.store import Store
from comfy_serverless.testing import free_port
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.worker.warmup import WarmupPlan
from comfy_serverless.worker.worker import Worker
from comfy_serverless.worker.worker_config import WorkerConfig
from tests.fakes.comfyui import running_fake
from tests.integration.test_executor_faults import RestartableFake
from workloads.workflows import tiny_sd15

SDXL = InstalledEnvironment("sdxl-tools", "3f2a9c" + "a" * 58, (
    InstalledNode("clean-pack", "https://example.invalid/clean.git", "b" * 40),
    InstalledNode("risky-pack", "https://example.invalid/risky.git", "c" * 40,
                  ("subprocess call in __init__.py",))))
VIDEO = InstalledEnvironment("video", "77aa00" + "d" * 58)


@dataclass
class EnvironmentRig:
    store: Store
    worker: Worker
    engine: RestartableFake
    key_id: str
    environment_dir: Path

    async def submit(self, environment: str | None) -> str:
        graph = tiny_sd15(1)
        execution = NewExecution(
            id=new_execution_id(), api_key_id=self.key_id, priority=5, workflow=graph,
            options=ExecutionOptions(), signature="s", webhook_url=None, client_id=None,
            submitted_at=time.time(), max_attempts=1, total_nodes=len(graph),
            environment=environment)
        await self.store.executions.create_execution(execution)
        return execution.id

    async def status(self, execution_id: str) -> str:
        record = await self.store.executions.execution(execution_id)
        assert record is not None
        return record.status

    async def published(self) -> tuple[str | None, str | None]:
        [worker] = await self.store.workers.live_workers(time.time() - 60)
        return worker.environment, worker.environment_hash


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[EnvironmentRig]:
    port = free_port()
    (tmp_path / "engine-out").mkdir()
    environment_dir = tmp_path / "environment"
    write_installed(environment_dir, SDXL)
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    key = issue_key("secret", "basic")
    await store.access.create_api_key(key.record)
    async with running_fake(tmp_path / "engine-out", port) as fake:
        config = WorkerConfig(worker_id="w-env", spool_dir=tmp_path / "spool",
                              poll_interval=0.05, environment_dir=environment_dir)
        engine = RestartableFake(f"http://127.0.0.1:{port}", fake)
        worker = Worker(config, store, engine, LocalStorage(tmp_path / "out", UrlSigner("s")))
        await worker.prepare()
        yield EnvironmentRig(store, worker, engine, key.record.id, environment_dir)
        await worker.stop()
    await store.close()


async def test_the_worker_publishes_its_environment_and_claims_by_it(
        rig: EnvironmentRig) -> None:
    assert await rig.published() == (SDXL.name, SDXL.hash)
    packs = await rig.store.workers.node_packs(time.time() - 60)
    assert (packs.verified, packs.flagged) == (frozenset({"clean-pack"}), frozenset({"risky-pack"}))
    video = await rig.submit("video")
    sdxl = await rig.submit("sdxl-tools")
    anywhere = await rig.submit(None)
    assert await rig.worker.run_burst() == ["completed", "completed"]
    assert [await rig.status(e) for e in (video, sdxl, anywhere)] == [
        "queued", "completed", "completed"]


async def test_a_new_record_counts_only_once_comfyui_restarts(rig: EnvironmentRig) -> None:
    video = await rig.submit("video")
    write_installed(rig.environment_dir, VIDEO)
    await rig.worker.publish_catalog()  # the periodic refresh: still the running one's
    assert await rig.worker.run_once() is None
    assert await rig.published() == (SDXL.name, SDXL.hash)
    await rig.engine.restart()
    assert await rig.worker.run_once() == "completed"  # caught up before its claim
    assert await rig.status(video) == "completed"
    assert await rig.published() == (VIDEO.name, VIDEO.hash)
    assert (await rig.store.workers.node_packs(time.time() - 60)).verified == frozenset()


def _warmup_with(tmp_path: Path, pack: str) -> WarmupPlan:
    """A warm-up whose decoded image goes through a node of `pack` before it is saved."""
    workflow = tiny_sd15(1, steps=2)
    workflow["10"] = {"class_type": f"Invert_{pack}", "inputs": {"image": ["8", 0]}}
    workflow["9"]["inputs"]["images"] = ["10", 0]
    source = tmp_path / f"warmup-{pack}.json"
    source.write_text(json.dumps(workflow))
    return WarmupPlan.load(source, timeout=10, rules=ValidationRules())


@pytest.mark.parametrize(("pack", "warms_up"), [("clean-pack", True), ("risky-pack", False)])
async def test_the_warm_up_counts_the_packs_its_environment_verified(
        rig: EnvironmentRig, tmp_path: Path, pack: str, warms_up: bool) -> None:
    """The settings verify no pack: only the environment's scan makes clean-pack runnable."""
    fake = rig.engine.fake
    for name in ("clean-pack", "risky-pack"):
        fake.object_info[f"Invert_{name}"] = {**fake.object_info["ImageInvert"],
                                              "python_module": f"custom_nodes.{name}"}
    config = replace(rig.worker.config, worker_id="w-warm", warmup=_warmup_with(tmp_path, pack))
    worker = Worker(config, rig.store, rig.engine, LocalStorage(tmp_path / "o", UrlSigner("s")))
    await worker.prepare()
    try:
        assert await worker.run_once() is None  # nothing queued: the warm-up runs first
        assert worker.warmed_up is warms_up
        warmed = [prompt for prompt in fake.prompts.values() if "10" in prompt]
        assert [prompt["10"]["class_type"] for prompt in warmed] == (
            [f"Invert_{pack}"] if warms_up else [])
    finally:
        await worker.stop()
