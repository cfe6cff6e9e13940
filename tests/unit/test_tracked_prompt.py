"""The worker's translation of the engine tracker's values into the store's records."""

from __future__ import annotations

from comfy_serverless.engine.comfyui.messages import ExecutionStarted, NodeStarted, StepProgress
from comfy_serverless.store.records import LogEntry, ProgressSnapshot
from comfy_serverless.worker.tracked_prompt import TrackedPrompt
from workloads.workflows import tiny_sd15

PID = "p"


def test_progress_and_log_reach_the_store_as_its_own_records() -> None:
    now = [50.0]
    prompt = TrackedPrompt(tiny_sd15(1), lambda: now[0])
    prompt.apply(ExecutionStarted(PID))
    prompt.apply(NodeStarted(PID, "4"))
    now[0] = 52.0
    prompt.apply(NodeStarted(PID, "3"))
    prompt.apply(StepProgress(PID, "3", 5, 20))
    snapshot = prompt.snapshot()
    assert isinstance(snapshot, ProgressSnapshot)
    assert (snapshot.current_node, snapshot.current_node_id, snapshot.current_step,
            snapshot.total_steps, snapshot.completed_nodes) == ("KSampler", "3", 5, 20, 1)
    log = prompt.drain_log()
    assert all(isinstance(entry, LogEntry) for entry in log)
    assert [(entry.at, entry.event, entry.node_id) for entry in log] == [
        (50.0, "execution_started", None), (52.0, "model_loaded", "4"),
        (52.0, "node_completed", "4")]
    assert prompt.drain_log() == []


def test_a_completed_prompt_shows_everything_done_and_its_engine_time() -> None:
    now = [10.0]
    prompt = TrackedPrompt(tiny_sd15(1), lambda: now[0])
    prompt.apply(ExecutionStarted(PID))
    prompt.apply(StepProgress(PID, "3", 20, 20))
    now[0] = 13.5
    final = prompt.final_snapshot()
    assert (final.progress, final.current_step, final.total_steps, final.completed_nodes) == (
        1.0, 20, 20, prompt.total_nodes)
    assert prompt.engine_time() == 3.5
