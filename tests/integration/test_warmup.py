"""The warm-up workflow: the worker runs it before its first claim and after each restart of
its ComfyUI, claims nothing until it has finished, and readiness waits for it.

First against the fake ComfyUI (ordering, failure and restarts on demand), then on a real
service over a real ComfyUI on the CPU (models loaded, nothing left, nothing billed)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_serverless.api.app import create_app
from comfy_serverless.auth.keys import issue_key
from comfy_serverless.engine.comfyui.installer import EngineLayout
from comfy_serverless.engine.comfyui.supervisor import AttachedEngine
from comfy_serverless.executions.submission import new_execution_id
from comfy_serverless.settings import Settings
from comfy_serverless.storage.local import LocalStorage
from comfy_serverless.storage.signing import UrlSigner
from comfy_serverless.store.options import ExecutionOptions
from comfy_serverless.store.records import NewExecution
from comfy_serverless.store.store import Store
from comfy_serverless.testing import LocalService, free_port
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.worker.warmup import WarmupFileError, WarmupPlan
from comfy_serverless.worker.worker import Worker
from comfy_serverless.worker.worker_config import WorkerConfig
from tests.fakes.comfyui import FakeComfyUI, running_fake
from tests.helpers import submit, wait_for, wait_until_finished
from workloads.workflows import inverted_image, tiny_sd15

WARMUP = tiny_sd15(7, steps=3)


class LocalFake(AttachedEngine):
    """The fake ComfyUI as a worker on its machine sees it: its output folder is local, and
    a restart is the fake's (counted, as a supervised child's restarts are)."""

    def __init__(self, base_url: str, fake: FakeComfyUI) -> None:
        super().__init__(base_url)
        self.fake = fake
        self.restarts = 0

    def local_folders(self) -> dict[str, Path]:
        return {"output": self.fake.output_dir}

    async def restart(self) -> bool:
        self.restarts += 1
        self.fake.restart()
        return True


@dataclass
class Rig:
    store: Store
    worker: Worker
    fake: FakeComfyUI
    engine: LocalFake
    key_id: str

    async def submit(self) -> str:
        graph = inverted_image(3)
        execution = NewExecution(
            id=new_execution_id(), api_key_id=self.key_id, priority=5, workflow=graph,
            options=ExecutionOptions(), signature="s", webhook_url=None, client_id=None,
            submitted_at=time.time(), max_attempts=1, total_nodes=len(graph))
        await self.store.executions.create_execution(execution)
        return execution.id

    def warmup_prompts(self) -> list[str]:
        """The prompts ComfyUI was given that were the warm-up, in order of arrival."""
        return [prompt_id for prompt_id, prompt in self.fake.prompts.items()
                if prompt.get("4", {}).get("class_type") == "CheckpointLoaderSimple"]

    async def worker_state(self) -> str:
        [state] = await self.store.workers.live_workers(0.0)
        return state.state


def _plan(tmp_path: Path) -> WarmupPlan:
    source = tmp_path / "warmup.json"
    source.write_text(json.dumps(WARMUP))
    return WarmupPlan.load(source, timeout=10, rules=ValidationRules())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    port = free_port()
    (tmp_path / "engine-out").mkdir()
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.migrate()
    key = issue_key("secret", "basic")
    await store.access.create_api_key(key.record)
    async with running_fake(tmp_path / "engine-out", port) as fake:
        config = WorkerConfig(worker_id="w-warm", spool_dir=tmp_path / "spool",
                              poll_interval=0.05, shutdown_grace=0.3, warmup=_plan(tmp_path))
        engine = LocalFake(f"http://127.0.0.1:{port}", fake)
        worker = Worker(config, store, engine,
                        LocalStorage(tmp_path / "storage", UrlSigner("s")))
        await worker.prepare()
        yield Rig(store, worker, fake, engine, key.record.id)
        await worker.stop()
    await store.close()


async def test_the_warm_up_runs_before_the_first_claim_and_leaves_nothing(rig: Rig) -> None:
    assert await rig.worker_state() == "warming"
    assert not rig.worker.warmed_up
    execution_id = await rig.submit()

    assert await rig.worker.run_once() == "completed"

    [warmup] = rig.warmup_prompts()
    assert next(iter(rig.fake.prompts)) == warmup, "ComfyUI ran the warm-up before the job"
    assert rig.worker.warmed_up
    assert rig.fake.history.keys().isdisjoint({warmup}), "its history entry was dropped"
    assert not (rig.fake.output_dir / f"{warmup}.png").exists(), "its file was removed"
    counts = await rig.store.metrics.metric_counts()
    assert counts["executions"] == {"completed": 1}, "the warm-up is no execution"
    assert await rig.store.executions.execution(execution_id) is not None
    await rig.worker.heartbeat()
    assert await rig.worker_state() == "idle"


async def test_a_failing_warm_up_keeps_the_worker_from_claiming(rig: Rig) -> None:
    rig.fake.faults.fail_node = "3"  # the warm-up's KSampler
    execution_id = await rig.submit()

    assert await rig.worker.run_once() is None
    assert await rig.worker.run_once() is None, "within its back-off: not run again"
    assert len(rig.warmup_prompts()) == 1
    queued = await rig.store.executions.execution(execution_id)
    assert queued is not None
    assert queued.status == "queued"
    await rig.worker.heartbeat()
    assert await rig.worker_state() == "warming"

    rig.fake.faults.fail_node = None
    outcome = await wait_for(rig.worker.run_once, timeout=20, interval=0.2,
                             what="the warm-up tried again after its back-off, then the job")
    assert outcome == "completed"
    assert len(rig.warmup_prompts()) == 2


async def test_after_a_restart_the_warm_up_runs_again_before_the_next_claim(rig: Rig) -> None:
    await rig.submit()
    assert await rig.worker.run_once() == "completed"
    await rig.engine.restart()
    await rig.submit()
    assert await rig.worker.run_once() == "completed"

    warmups = rig.warmup_prompts()
    assert len(warmups) == 2
    order = list(rig.fake.prompts)
    assert len(order) == 4
    assert [order[0], order[2]] == warmups, "each warm-up came before the next job"


async def test_readiness_answers_warming_until_the_warm_up_ends(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "engine").mkdir()
    source = tmp_path / "warmup.json"
    source.write_text(json.dumps(WARMUP))
    async with running_fake(tmp_path / "engine", port) as fake:
        fake.faults.step_seconds = 0.5  # a warm-up of 1.5 s: long enough to be seen
        settings = Settings(data_dir=tmp_path / "data", comfyui_url=f"http://127.0.0.1:{port}",
                            webhook_dispatcher=False, database_url=None,
                            warmup_workflow=source)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                first = await client.get("/readyz")
                assert first.status_code == 503
                assert first.json() == {"status": "unavailable", "store": "sqlite",
                                        "engine": "warming"}

                async def ready() -> bool:
                    response = await client.get("/readyz")
                    return response.status_code == 200 and response.json()["engine"] == "ready"

                await wait_for(ready, timeout=20, what="the warm-up to end")


async def test_a_missing_warm_up_file_stops_the_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", comfyui_url="http://127.0.0.1:9",
                        webhook_dispatcher=False, database_url=None,
                        warmup_workflow=tmp_path / "nowhere.json")
    app = create_app(settings)
    with pytest.raises(WarmupFileError, match=r"nowhere\.json cannot be read"):
        async with app.router.lifespan_context(app):
            raise AssertionError("the service started without its warm-up file")


# --------------------------------------------------------------------------- real ComfyUI


def _load_entries(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for entry in status["execution_log"] if entry["event"] == "model_loaded"]


def _readiness(base_url: str) -> tuple[int, dict[str, Any]] | None:
    with contextlib.suppress(httpx.HTTPError):
        response = httpx.get(base_url + "/readyz", timeout=2)
        return response.status_code, response.json()
    return None


@pytest.mark.comfyui
async def test_on_real_comfyui_the_first_job_finds_the_checkpoint_loaded(
        engine_layout: EngineLayout, tmp_path: Path) -> None:
    warmup = tmp_path / "warmup.json"
    warmup.write_text(json.dumps(tiny_sd15(11, steps=4)))
    data_dir = tmp_path / "service"
    env = {"COMFY_SERVERLESS_WARMUP_WORKFLOW": str(warmup),
           "COMFY_SERVERLESS_LOG_FORMAT": "json", "COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1"}
    service = LocalService.launch(data_dir, engine_layout.root, extra_env=env)
    try:
        seen = await _readiness_until_ready(service)
        assert (503, "warming") in seen, seen
        assert (data_dir / "comfyui" / "output").is_dir()
        assert _prompt_files(data_dir / "comfyui") == [], "the warm-up left no file in ComfyUI"
        finished = _warmup_finished(service)
        assert finished["worker_id"], finished
        print(f"\n{finished['message'].rsplit('/', 1)[-1]}; readiness answers {seen[:3]}…")
        headers = {"Authorization": f"Bearer {service.new_unthrottled_key()}"}
        async with httpx.AsyncClient(base_url=service.base_url, headers=headers,
                                     timeout=60) as api:
            execution_id = await submit(api, tiny_sd15(12, steps=2))
            status = await wait_until_finished(api, execution_id)
            results = (await api.get(f"/v1/workflows/{execution_id}/results")).json()
        assert status["status"] == "completed", status
        print(f"first job after the warm-up: {results['execution_metrics']}")
        assert _load_entries(status) == [], "the warm-up loaded the checkpoint already"
        loader = [entry for entry in status["execution_log"]
                  if entry["event"] == "node_completed" and entry["node_id"] == "4"]
        assert loader, status["execution_log"]
        assert loader[0]["details"].get("cached") is True, status["execution_log"]
        assert _execution_ids(data_dir) == [execution_id], "the warm-up is no execution"
    finally:
        service.stop()


async def _readiness_until_ready(service: LocalService) -> list[tuple[int, str]]:
    """Every readiness answer from the service's start until it is ready: (status, engine)."""
    seen: list[tuple[int, str]] = []

    async def ready() -> bool:
        if service.process.poll() is not None:
            raise AssertionError(f"the service exited:\n{service.log_tail()}")
        answer = _readiness(service.base_url)
        if answer is not None:
            seen.append((answer[0], str(answer[1].get("engine"))))
        return answer is not None and answer[0] == 200

    await wait_for(ready, timeout=240, interval=0.05, what="the service to be ready")
    return seen


def _warmup_finished(service: LocalService) -> dict[str, Any]:
    for line in (service.data_dir / "service.log").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and "warm-up" in str(entry.get("message")) \
                    and "finished in" in str(entry.get("message")):
                return entry
    raise AssertionError(f"no warm-up line in the log:\n{service.log_tail()}")


def _execution_ids(data_dir: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(data_dir / "comfy-serverless.db")) as db:
        return [row[0] for row in db.execute("SELECT id FROM executions")]


def _prompt_files(comfyui_dir: Path) -> list[Path]:
    """The files in the folders a prompt writes in: ComfyUI's output and temp folders."""
    return sorted(path for folder in ("output", "temp") for path in
                  (comfyui_dir / folder).rglob("*") if path.is_file())
