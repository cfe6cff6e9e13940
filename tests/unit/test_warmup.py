"""The warm-up runner (worker/warmup.py) against a scripted ComfyUI client: what it submits,
what it leaves behind, how it fails, backs off and tries again."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from comfy_serverless.engine.comfyui.client import ComfyUIClient, Subscription, WrittenFile
from comfy_serverless.engine.comfyui.messages import (
    EngineEvent,
    ExecutionError,
    ExecutionFinished,
    ExecutionInterrupted,
    ExecutionStarted,
    NodeExecuted,
    NodeStarted,
)
from comfy_serverless.engine.comfyui.supervisor import Engine
from comfy_serverless.errors import EnginePromptRejected
from comfy_serverless.models.warmth import WarmModels
from comfy_serverless.validation.rules import ValidationRules
from comfy_serverless.worker.engine_files import EngineFiles
from comfy_serverless.worker.engine_history import EngineHistory
from comfy_serverless.worker.warmup import WarmUp, WarmupFileError, WarmupPlan
from workloads.workflows import TINY_CHECKPOINT, tiny_sd15

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# What the scripted ComfyUI does with each prompt: the events it sends for it.
Script = Callable[[str, dict[str, Any]], list[EngineEvent]]


def _catalog() -> dict[str, Any]:
    info: dict[str, Any] = json.loads((FIXTURES / "object_info.json").read_text())
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = [TINY_CHECKPOINT]
    for pack in ("clean_pack", "risky_pack"):  # custom nodes, as an environment installs them
        info[f"Invert_{pack}"] = {**info["ImageInvert"], "name": f"Invert_{pack}",
                                  "python_module": f"custom_nodes.{pack}.nodes"}
    return info


def _with_custom_node(pack: str) -> dict[str, Any]:
    """The tiny workflow with its decoded image inverted by a node of `pack` before saving."""
    workflow = tiny_sd15(1, steps=2)
    workflow["10"] = {"class_type": f"Invert_{pack}", "inputs": {"image": ["8", 0]}}
    workflow["9"]["inputs"]["images"] = ["10", 0]
    return workflow


def _runs_whole(output_dir: Path) -> Script:
    """ComfyUI running the prompt to its end; its SaveImage writes a file."""
    def events(prompt_id: str, prompt: dict[str, Any]) -> list[EngineEvent]:
        out: list[EngineEvent] = [ExecutionStarted(prompt_id)]
        for node_id, node in prompt.items():
            out.append(NodeStarted(prompt_id, node_id))
            if node["class_type"] == "SaveImage":
                (output_dir / f"{prompt_id}.png").write_bytes(b"png")
                image = {"filename": f"{prompt_id}.png", "subfolder": "", "type": "output"}
                out.append(NodeExecuted(prompt_id, node_id, {"images": [image]}))
        return [*out, ExecutionFinished(prompt_id)]
    return events


def _fails_at(node_id: str) -> Script:
    def events(prompt_id: str, prompt: dict[str, Any]) -> list[EngineEvent]:
        return [ExecutionStarted(prompt_id), NodeStarted(prompt_id, node_id),
                ExecutionError(prompt_id, node_id, prompt[node_id]["class_type"],
                               "OutOfMemoryError", "CUDA out of memory")]
    return events


def _never_starts(prompt_id: str, prompt: dict[str, Any]) -> list[EngineEvent]:
    return []


class ScriptedClient:
    """The ComfyUIClient calls the warm-up makes, answered from a script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connected = True
        self.submitted: dict[str, dict[str, Any]] = {}
        self.history_entries: dict[str, dict[str, Any]] = {}
        self.deleted_history: list[str] = []
        self.interrupted: list[str] = []
        self.rejection: EnginePromptRejected | None = None
        self.catalog = _catalog()
        self.arrived = asyncio.Event()  # a prompt was submitted
        self._subscriptions: dict[str, Subscription] = {}

    def subscribe(self, prompt_id: str) -> Subscription:
        self._subscriptions[prompt_id] = Subscription(prompt_id)
        return self._subscriptions[prompt_id]

    def unsubscribe(self, prompt_id: str) -> None:
        self._subscriptions.pop(prompt_id, None)

    async def wait_connected(self, timeout: float = 30.0) -> None:
        return None

    async def object_info(self) -> dict[str, Any]:
        return self.catalog

    async def submit(self, prompt: dict[str, Any], prompt_id: str, *,
                     extra_data: dict[str, Any] | None = None) -> None:
        if self.rejection is not None:
            raise self.rejection
        self.submitted[prompt_id] = prompt
        self.arrived.set()
        events = self.script(prompt_id, prompt)
        if events and isinstance(events[-1], ExecutionFinished | ExecutionError):
            self.history_entries[prompt_id] = {"outputs": {}}
        for event in events:
            self._subscriptions[prompt_id].put(event)

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        return None

    async def interrupt(self, prompt_id: str) -> None:
        self.interrupted.append(prompt_id)
        self._subscriptions[prompt_id].put(ExecutionInterrupted(prompt_id, None))

    async def queue(self) -> dict[str, Any]:
        return {"queue_running": [], "queue_pending": []}

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        return self.history_entries.get(prompt_id)

    async def delete_history(self, prompt_ids: list[str]) -> None:
        self.deleted_history += prompt_ids
        for prompt_id in prompt_ids:
            self.history_entries.pop(prompt_id, None)

    async def written_files(self, prompt_id: str) -> list[WrittenFile]:
        return []


class RestartableEngine:
    def __init__(self) -> None:
        self.restarts = 0

    async def restart(self) -> bool:
        self.restarts += 1
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _plan(tmp_path: Path, workflow: dict[str, Any], *, timeout: float = 5.0) -> WarmupPlan:
    source = tmp_path / "warmup.json"
    source.write_text(json.dumps(workflow))
    return WarmupPlan.load(source, timeout=timeout, rules=ValidationRules())


class Rig:
    def __init__(self, tmp_path: Path, script: Script, *, timeout: float = 5.0,
                 workflow: dict[str, Any] | None = None) -> None:
        self.verified_packs: list[str] = []  # what the worker's environment scanned clean
        self.output = tmp_path / "output"
        self.output.mkdir(exist_ok=True)
        self.client = ScriptedClient(script)
        self.engine = RestartableEngine()
        self.clock = Clock()
        self.stopping = asyncio.Event()
        self.warm = WarmModels()
        client = cast(ComfyUIClient, self.client)
        self.warmup = WarmUp(
            _plan(tmp_path, workflow or tiny_sd15(1, steps=2), timeout=timeout), client,
            cast(Engine, self.engine), files=EngineFiles(client, {"output": self.output}),
            history=EngineHistory(client, settle_timeout=0.5), prompt_for=self.warm.prompt_for,
            stopping=self.stopping, clock=self.clock,
            verified_packs=lambda: tuple(self.verified_packs))


async def test_it_runs_the_workflow_as_it_is_and_leaves_nothing_behind(tmp_path: Path) -> None:
    rig = Rig(tmp_path, _runs_whole(tmp_path / "output"))
    assert not rig.warmup.done

    assert await rig.warmup.ready_for_claims()

    assert rig.warmup.done
    assert rig.warmup.last_duration is not None
    [(prompt_id, prompt)] = rig.client.submitted.items()
    assert prompt == tiny_sd15(1, steps=2), "no fresh marks: a cached answer is a warm model"
    assert rig.warm.current() == {TINY_CHECKPOINT}, "its models are the worker's warm ones"
    assert list(rig.output.iterdir()) == [], "the file its SaveImage wrote was removed"
    assert rig.client.deleted_history == [prompt_id]
    assert await rig.warmup.ready_for_claims()
    assert len(rig.client.submitted) == 1, "done once: not run again"


async def test_after_a_restart_it_runs_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path, _runs_whole(tmp_path / "output"))
    assert await rig.warmup.ready_for_claims()
    rig.warmup.needed_again()
    assert not rig.warmup.done
    assert await rig.warmup.ready_for_claims()
    assert len(rig.client.submitted) == 2


async def test_a_failed_warm_up_is_logged_and_tried_again_with_back_off(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, _fails_at("3"))
    with caplog.at_level(logging.ERROR, logger="comfy_serverless.worker.warmup"):
        assert not await rig.warmup.ready_for_claims()
    assert not rig.warmup.done
    [record] = caplog.records
    assert "node 3 (KSampler) failed: OutOfMemoryError: CUDA out of memory" in record.message
    assert "tried again in 5 s" in record.message
    assert rig.client.deleted_history == list(rig.client.submitted), "its entry is dropped"

    assert not await rig.warmup.ready_for_claims()
    assert len(rig.client.submitted) == 1, "within the back-off: not tried again"
    rig.clock.now += 5.0
    assert not await rig.warmup.ready_for_claims()
    assert len(rig.client.submitted) == 2
    assert "tried again in 10 s" in caplog.records[-1].message, "the pause doubles"

    rig.client.script = _runs_whole(rig.output)
    rig.clock.now += 10.0
    assert await rig.warmup.ready_for_claims()
    assert rig.warmup.done


async def test_a_refusal_names_comfyuis_node_errors(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, _runs_whole(tmp_path / "output"))
    rig.client.rejection = EnginePromptRejected(
        "Prompt outputs failed validation", {"3": {"errors": [{"message": "bad cfg"}]}})
    with caplog.at_level(logging.ERROR, logger="comfy_serverless.worker.warmup"):
        assert not await rig.warmup.ready_for_claims()
    assert "ComfyUI refused it: Prompt outputs failed validation" in caplog.text
    assert "bad cfg" in caplog.text


async def test_a_workflow_that_does_not_fit_the_catalog_is_not_submitted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    workflow = tiny_sd15(1, steps=2)
    workflow["4"]["inputs"]["ckpt_name"] = "missing.safetensors"
    rig = Rig(tmp_path, _runs_whole(tmp_path / "output"), workflow=workflow)
    with caplog.at_level(logging.ERROR, logger="comfy_serverless.worker.warmup"):
        assert not await rig.warmup.ready_for_claims()
    assert rig.client.submitted == {}
    assert "it does not fit this ComfyUI" in caplog.text
    assert "node 4" in caplog.text


async def test_a_warm_up_comfyui_never_starts_times_out_and_restarts_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, _never_starts, timeout=0.3)
    with caplog.at_level(logging.ERROR, logger="comfy_serverless.worker.warmup"):
        assert not await rig.warmup.ready_for_claims()
    assert rig.client.interrupted == list(rig.client.submitted)
    assert rig.engine.restarts == 1
    assert "ComfyUI did not start it within warmup_timeout (0 s); ComfyUI was restarted" \
        in caplog.text


async def test_a_stop_ends_a_warm_up_under_way(tmp_path: Path) -> None:
    rig = Rig(tmp_path, _never_starts, timeout=60.0)
    attempt = asyncio.create_task(rig.warmup.ready_for_claims())
    await asyncio.wait_for(rig.client.arrived.wait(), 5.0)
    rig.stopping.set()
    assert not await asyncio.wait_for(attempt, 5.0)
    assert rig.client.interrupted == list(rig.client.submitted)
    assert rig.engine.restarts == 0


async def test_a_ui_format_file_is_converted_with_the_catalog(tmp_path: Path) -> None:
    ui_file = json.loads((FIXTURES / "ui_workflows" / "tiny-sd15.json").read_text())
    rig = Rig(tmp_path, _runs_whole(tmp_path / "output"), workflow=ui_file)
    assert await rig.warmup.ready_for_claims()
    [prompt] = rig.client.submitted.values()
    assert {node["class_type"] for node in prompt.values()} >= {
        "CheckpointLoaderSimple", "KSampler", "SaveImage"}
    assert rig.warm.current() == {TINY_CHECKPOINT}


async def test_a_node_of_a_pack_its_environment_verified_runs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, _runs_whole(tmp_path / "output"), workflow=_with_custom_node("clean_pack"))
    with caplog.at_level(logging.ERROR, logger="comfy_serverless.worker.warmup"):
        assert not await rig.warmup.ready_for_claims(), "no environment yet: unverified"
    assert "unverified node pack 'clean_pack'" in caplog.text
    assert rig.client.submitted == {}
    rig.verified_packs[:] = ["clean_pack"]  # an engine restart found the environment
    rig.warmup.needed_again()
    assert await rig.warmup.ready_for_claims()
    [prompt] = rig.client.submitted.values()
    assert prompt["10"]["class_type"] == "Invert_clean_pack"


async def test_a_node_of_a_flagged_pack_is_still_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, _runs_whole(tmp_path / "output"), workflow=_with_custom_node("risky_pack"))
    rig.verified_packs[:] = ["clean_pack"]  # risky_pack's scan found something
    with caplog.at_level(logging.ERROR, logger="comfy_serverless.worker.warmup"):
        assert not await rig.warmup.ready_for_claims()
    assert "unverified node pack 'risky_pack'" in caplog.text
    assert rig.client.submitted == {}
    assert not rig.warmup.done


def test_a_missing_or_malformed_file_is_a_startup_error(tmp_path: Path) -> None:
    rules = ValidationRules()
    with pytest.raises(WarmupFileError, match="cannot be read"):
        WarmupPlan.load(tmp_path / "nowhere.json", timeout=1, rules=rules)
    for text, complaint in (("{not json", "is not JSON"), ("[1, 2]", "not a JSON object"),
                            ("{}", "is not a workflow: .*no nodes"),
                            ('{"1": {"class_type": "SaveImage", "inputs": {"images": ["9", 0]}}}',
                             "is not a workflow")):
        source = tmp_path / "warmup.json"
        source.write_text(text)
        with pytest.raises(WarmupFileError, match=complaint):
            WarmupPlan.load(source, timeout=1, rules=rules)
